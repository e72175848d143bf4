//! # natterjack-storage
//!
//! The only crate with SQL in it. It implements [`natterjack_core::ports::Store`] on SQLite
//! with rusqlite (reads on the caller's thread, writes group-committed by one writer
//! thread: [`sqlite`]) and on PostgreSQL with sqlx, using prepared statements with bound
//! parameters exclusively: no statement text is ever built from input.
//!
//! Least privilege on SQLite: schema changes run on a separate owner connection
//! ([`sqlite::migrate`]); every connection the server uses is opened with an SQLite
//! authorizer ([`sqlite::authorizer`]) that refuses DDL, `ATTACH`, `PRAGMA` writes, and any
//! `INSERT`/`UPDATE`/`DELETE` the API never needs. Triggers refuse the same changes to
//! immutable tables as a second wall.
//!
//! Least privilege on PostgreSQL ([`postgres`]): an administrator creates an owner role and
//! an app role once; migrations run as the owner, which then grants the app role exactly
//! the privileges the API needs; the server connects as the app role and refuses to start
//! if it holds anything more. Triggers refuse the same changes as on SQLite, and any
//! change to the audit log, even from the owner.
#![forbid(unsafe_code)]

mod ids;
pub mod postgres;
pub mod rotation;
mod rows;
pub mod sealing;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What a migration run did.
#[derive(Debug, Default)]
pub struct Migrated {
    /// The versions applied.
    pub applied: Vec<i64>,
    /// Plaintext rows sealed on the way to schema 7.
    pub sealed: u64,
}
