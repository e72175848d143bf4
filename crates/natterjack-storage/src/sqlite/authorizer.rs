//! The SQLite authorizer: least privilege for the server's own database connections.
//!
//! SQLite has no roles, so the limits a PostgreSQL app role would have are enforced by a
//! callback that SQLite consults while compiling every statement. A statement that needs a
//! denied action fails to prepare with "not authorized", whatever its text. The callback is
//! registered through rusqlite's safe API: there is no `unsafe` code in Natterjack.

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

/// Columns the API updates, per table. Every other UPDATE is refused.
const UPDATABLE: &[(&str, &[&str])] = &[
    ("users", &["password_hash", "is_admin"]),
    // Re-sealing only: triggers refuse any update that does not change the key.
    ("spaces", &["name", "key_id"]),
    ("messages", &["body", "key_id"]),
    // Reserving a block of row ids; a trigger lets `next` only move forward.
    ("row_ids", &["next"]),
    ("memberships", &["permissions", "granted_by", "granted_at"]),
    ("audit_export_cursor", &["delivered_id"]),
    // Moved by the triggers of the cached tables; another trigger lets it only move forward.
    ("cache_epoch", &["n"]),
    ("console_sessions", &["last_seen_at"]),
];
/// Tables the API deletes from (moderation and revocation). Every other DELETE is refused.
const DELETABLE: &[&str] = &[
    "messages",
    "memberships",
    // Logout, revocation, expiry; a pending sign-on is taken by deleting it.
    "console_sessions",
    "console_pending_logins",
];
/// Tables the API inserts into.
const INSERTABLE: &[&str] = &[
    "users",
    "spaces",
    "memberships",
    "messages",
    "audit_log",
    "audit_export_cursor",
    "external_identities",
    "console_sessions",
    "console_pending_logins",
];

/// The decision for one action, as a pure function so it can be tested without a database.
pub(crate) fn decide(action: &AuthAction<'_>) -> bool {
    match action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. } => true,
        AuthAction::Insert { table_name } => INSERTABLE.contains(table_name),
        AuthAction::Update {
            table_name,
            column_name,
        } => UPDATABLE
            .iter()
            .any(|(t, cols)| t == table_name && cols.contains(column_name)),
        AuthAction::Delete { table_name } => DELETABLE.contains(table_name),
        // A PRAGMA with an argument changes something; reads (no argument) are harmless.
        AuthAction::Pragma { pragma_value, .. } => pragma_value.is_none(),
        // DDL of every kind, ATTACH/DETACH, ANALYZE, REINDEX, virtual tables, and any
        // action code this list does not know: refused.
        _ => false,
    }
}

/// How often the authorizer was consulted: once per action of each statement compiled, so
/// the tests can tell a statement taken from the cache from one compiled again.
#[cfg(test)]
pub(crate) static CONSULTED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

fn callback(context: AuthContext<'_>) -> Authorization {
    #[cfg(test)]
    CONSULTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if decide(&context.action) {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}

/// Installs the authorizer on a freshly opened server connection.
pub(crate) fn install(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.authorizer(Some(callback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_attach_and_pragma_writes_are_denied() {
        for action in [
            AuthAction::CreateTable {
                table_name: "users",
            },
            AuthAction::DropTable {
                table_name: "users",
            },
            AuthAction::AlterTable {
                database_name: "main",
                table_name: "users",
            },
            AuthAction::CreateTrigger {
                trigger_name: "t",
                table_name: "users",
            },
            AuthAction::DropTrigger {
                trigger_name: "audit_log_is_append_only",
                table_name: "audit_log",
            },
            AuthAction::CreateIndex {
                index_name: "i",
                table_name: "users",
            },
            AuthAction::Attach { filename: "x.db" },
            AuthAction::Detach { database_name: "x" },
            AuthAction::CreateVtable {
                table_name: "v",
                module_name: "fts5",
            },
        ] {
            assert!(!decide(&action), "{action:?}");
        }
        assert!(!decide(&AuthAction::Pragma {
            pragma_name: "journal_mode",
            pragma_value: Some("delete")
        }));
        assert!(decide(&AuthAction::Pragma {
            pragma_name: "journal_mode",
            pragma_value: None
        }));
    }

    #[test]
    fn only_the_updates_and_deletes_the_api_needs_are_allowed() {
        let update = |table_name, column_name| AuthAction::Update {
            table_name,
            column_name,
        };
        assert!(decide(&update("users", "password_hash")));
        assert!(!decide(&update("users", "username")));
        assert!(!decide(&update("messages", "space_id")));
        assert!(!decide(&update("data_keys", "wrapped")));
        assert!(!decide(&AuthAction::Insert {
            table_name: "data_keys"
        }));
        assert!(!decide(&AuthAction::Delete {
            table_name: "users"
        }));
        assert!(!decide(&AuthAction::Delete {
            table_name: "spaces"
        }));
        assert!(decide(&AuthAction::Delete {
            table_name: "messages"
        }));
    }
}
