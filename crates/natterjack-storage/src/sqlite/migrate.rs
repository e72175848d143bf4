//! Schema migrations, run on a dedicated owner connection without the authorizer.

use super::errors::classify;
use super::sealed;
use crate::Migrated;
use crate::sealing::Keyring;
use natterjack_core::ports::StoreError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

/// The migrations, in order. Versions are shared with the PostgreSQL backend's numbering.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "audit_log",
        include_str!("../../migrations/sqlite/0002_audit_log.sql"),
    ),
    (
        3,
        "audit_export",
        include_str!("../../migrations/sqlite/0003_audit_export.sql"),
    ),
    (
        4,
        "audit_summaries",
        include_str!("../../migrations/sqlite/0004_audit_summaries.sql"),
    ),
    (
        5,
        "external_identities",
        include_str!("../../migrations/sqlite/0005_external_identities.sql"),
    ),
    (
        6,
        "data_keys",
        include_str!("../../migrations/sqlite/0006_data_keys.sql"),
    ),
    (
        7,
        "sealed_content",
        include_str!("../../migrations/sqlite/0007_sealed_content.sql"),
    ),
    (
        8,
        "cache_invalidation",
        include_str!("../../migrations/sqlite/0008_cache_invalidation.sql"),
    ),
    (
        9,
        "messages_by_time",
        include_str!("../../migrations/sqlite/0009_messages_by_time.sql"),
    ),
    (
        10,
        "message_feed",
        include_str!("../../migrations/sqlite/0010_message_feed.sql"),
    ),
    (
        11,
        "console_sessions",
        include_str!("../../migrations/sqlite/0011_console_sessions.sql"),
    ),
];

/// The version whose transaction first seals every plaintext row ([`sealed::seal_plaintext`]).
const SEALED: i64 = 7;

/// The schema version this build expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|(v, _, _)| *v).unwrap_or(0)
}

/// The version the database is at (0 for a new database). Reads only.
pub fn current_version(conn: &Connection) -> rusqlite::Result<i64> {
    let tracked: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |row| row.get(0),
    )?;
    if tracked == 0 {
        return Ok(0);
    }
    let version: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .optional()?
        .flatten();
    Ok(version.unwrap_or(0))
}

/// Applies every migration newer than the database, each in its own transaction, sealing
/// plaintext rows inside the schema-7 transaction with `keyring`.
pub fn run(conn: &mut Connection, keyring: &Keyring) -> Result<Migrated, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT",
    )
    .map_err(classify)?;
    let current = current_version(conn).map_err(classify)?;
    let mut done = Migrated::default();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        if *version == SEALED {
            done.sealed = sealed::seal_plaintext(&tx, keyring)?;
        }
        // The migration text is a constant compiled into the binary, never input.
        tx.execute_batch(sql).map_err(classify)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, unixepoch())",
            (version, name),
        )
        .map_err(classify)?;
        tx.commit().map_err(classify)?;
        done.applied.push(*version);
    }
    if done.sealed > 0 {
        // The old text is gone from the tables but not yet from free pages and the WAL:
        // rebuild the file and empty the WAL.
        conn.execute_batch("VACUUM").map_err(classify)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(classify)?;
    }
    // Whatever was applied, the configured key-encryption key must open every data key.
    sealed::load(conn, keyring)?;
    Ok(done)
}
