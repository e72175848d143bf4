//! The app role's grants: exactly what the API's statements need, reapplied after every
//! migration so that they converge whatever was granted before.

use super::ddl;
use super::errors::classify;
use super::identifier::Identifier;
use natterjack_core::ports::StoreError;
use sqlx::{Connection, PgConnection};

/// Applied in order, in one transaction, each with the app role's name for `%I`.
///
/// - users: read, sign up, change a password or the admin flag; never rename or delete.
/// - spaces: read and create; re-seal the name (UPDATE of `name` and `key_id`, which the
///   triggers allow only under another live key); never delete.
/// - memberships: read, grant (an upsert: UPDATE of the three columns it sets), revoke
///   (UPDATE, or DELETE of an emptied membership).
/// - messages: read, post, moderate (DELETE); re-seal the body as for spaces; never edit.
/// - data_keys: read; only the owner adds, destroys or re-wraps keys.
/// - row_ids: read, reserve a block of ids (UPDATE of `next`, which a trigger only lets
///   move forward).
/// - audit_log: append and read; never change (the triggers refuse even the owner).
/// - audit_export_cursor: read, create a sink's cursor, move it (its trigger refuses
///   moving it back); never delete.
/// - external_identities: read, link; never relink or unlink (an operator's migration).
/// - schema_migrations: read, so the server can check the schema version.
/// - console_sessions: open, read, end (logout, revocation, expiry); record the last use.
/// - console_pending_logins: keep and take (by deleting) a sign-on in progress.
///
/// Identity columns draw from their sequences without any grant on them.
const GRANTS: &[&str] = &[
    "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I",
    "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC",
    "GRANT SELECT, INSERT ON TABLE public.users TO %I",
    "GRANT UPDATE (password_hash, is_admin) ON TABLE public.users TO %I",
    "GRANT SELECT, INSERT ON TABLE public.spaces TO %I",
    "GRANT UPDATE (name, key_id) ON TABLE public.spaces TO %I",
    "GRANT SELECT, INSERT, DELETE ON TABLE public.memberships TO %I",
    "GRANT UPDATE (permissions, granted_by, granted_at) ON TABLE public.memberships TO %I",
    "GRANT SELECT, INSERT, DELETE ON TABLE public.messages TO %I",
    "GRANT UPDATE (body, key_id) ON TABLE public.messages TO %I",
    "GRANT SELECT ON TABLE public.data_keys TO %I",
    "GRANT SELECT ON TABLE public.row_ids TO %I",
    "GRANT UPDATE (next) ON TABLE public.row_ids TO %I",
    "GRANT SELECT, INSERT ON TABLE public.audit_log TO %I",
    "GRANT SELECT, INSERT ON TABLE public.audit_export_cursor TO %I",
    "GRANT UPDATE (delivered_id) ON TABLE public.audit_export_cursor TO %I",
    "GRANT SELECT, INSERT ON TABLE public.external_identities TO %I",
    "GRANT SELECT ON TABLE public.schema_migrations TO %I",
    "GRANT SELECT, INSERT, DELETE ON TABLE public.console_sessions TO %I",
    "GRANT UPDATE (last_seen_at) ON TABLE public.console_sessions TO %I",
    "GRANT SELECT, INSERT, DELETE ON TABLE public.console_pending_logins TO %I",
];

/// Replaces whatever the app role held on tables and sequences with [`GRANTS`], atomically:
/// the server never sees a moment with fewer (or more) privileges than these.
pub(crate) async fn apply(owner: &mut PgConnection, app: &Identifier) -> Result<(), StoreError> {
    let mut tx = owner.begin().await.map_err(classify)?;
    for template in GRANTS {
        ddl::run(&mut tx, template, &[app.as_str()]).await?;
    }
    tx.commit().await.map_err(classify)
}
