//! Schema migrations on PostgreSQL, run as the owner role, one at a time across every
//! process (an advisory lock), each in its own transaction.

use super::errors::classify;
use super::grants;
use super::identifier::Identifier;
use super::sealed;
use crate::Migrated;
use crate::sealing::Keyring;
use natterjack_core::ports::StoreError;
use sqlx::{Connection, PgConnection};

/// The migrations, in order; versions share the SQLite backend's numbering.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "audit_log",
        include_str!("../../migrations/postgres/0002_audit_log.sql"),
    ),
    (
        3,
        "audit_export",
        include_str!("../../migrations/postgres/0003_audit_export.sql"),
    ),
    (
        4,
        "audit_summaries",
        include_str!("../../migrations/postgres/0004_audit_summaries.sql"),
    ),
    (
        5,
        "external_identities",
        include_str!("../../migrations/postgres/0005_external_identities.sql"),
    ),
    (
        6,
        "data_keys",
        include_str!("../../migrations/postgres/0006_data_keys.sql"),
    ),
    (
        7,
        "sealed_content",
        include_str!("../../migrations/postgres/0007_sealed_content.sql"),
    ),
    (
        8,
        "cache_invalidation",
        include_str!("../../migrations/postgres/0008_cache_invalidation.sql"),
    ),
    (
        9,
        "messages_by_time",
        include_str!("../../migrations/postgres/0009_messages_by_time.sql"),
    ),
    (
        10,
        "message_feed",
        include_str!("../../migrations/postgres/0010_message_feed.sql"),
    ),
    (
        11,
        "console_sessions",
        include_str!("../../migrations/postgres/0011_console_sessions.sql"),
    ),
];

/// The version whose transaction first seals every plaintext row ([`sealed::seal_plaintext`]).
const SEALED: i64 = 7;

/// The advisory lock key two migrators contend for ("natjack!" as an integer): a second
/// `natterjack migrate` (or a rolling deployment's next node) waits instead of racing.
const LOCK_KEY: i64 = 0x6e61_746a_6163_6b21;

/// The schema version this build expects.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map(|(v, _, _)| *v).unwrap_or(0)
}

/// The version the database is at (0 when it has never been migrated). Reads only, so the
/// app role can ask too.
pub(crate) async fn current_version(conn: &mut PgConnection) -> Result<i64, StoreError> {
    let tracked: bool =
        sqlx::query_scalar("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .map_err(classify)?;
    if !tracked {
        return Ok(0);
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM public.schema_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(classify)?;
    Ok(version.unwrap_or(0))
}

/// Applies every migration newer than the database under the advisory lock, then the app
/// role's grants under the same lock (so a concurrent migrator never revokes them halfway),
/// sealing plaintext rows with `keyring` inside the schema-7 transaction.
pub(crate) async fn run(
    conn: &mut PgConnection,
    app: &Identifier,
    keyring: &Keyring,
) -> Result<Migrated, StoreError> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    let outcome = match apply_pending(conn, keyring).await {
        Ok(applied) => grants::apply(conn, app).await.map(|()| applied),
        Err(e) => Err(e),
    };
    // Also released when the connection closes; unlocking explicitly lets a pooled
    // connection be reused safely.
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(classify);
    let applied = outcome?;
    unlocked?;
    Ok(applied)
}

async fn apply_pending(conn: &mut PgConnection, keyring: &Keyring) -> Result<Migrated, StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS public.schema_migrations \
         (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(classify)?;
    let current = current_version(conn).await?;
    let mut done = Migrated::default();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        let mut tx = conn.begin().await.map_err(classify)?;
        if *version == SEALED {
            done.sealed = sealed::seal_plaintext(&mut tx, keyring).await?;
        }
        // The migration text is a constant compiled into the binary, never input.
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query(
            "INSERT INTO public.schema_migrations (version, name, applied_at) \
             VALUES ($1, $2, extract(epoch FROM now())::bigint)",
        )
        .bind(version)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        done.applied.push(*version);
    }
    // Whatever was applied, the configured key-encryption key must open every data key.
    sealed::load(conn, keyring).await?;
    Ok(done)
}
