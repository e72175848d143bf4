//! # natterjack-storage
//!
//! The only crate with SQL in it. It implements [`natterjack_core::ports::Store`] with sqlx,
//! using prepared statements with bound parameters exclusively: no statement text is ever
//! built from input.
//!
//! Least privilege on SQLite: schema changes run on a separate owner connection
//! ([`sqlite::migrate`]); every connection the server uses is opened with an SQLite
//! authorizer ([`sqlite::authorizer`]) that refuses DDL, `ATTACH`, `PRAGMA` writes, and any
//! `INSERT`/`UPDATE`/`DELETE` the API never needs. Triggers refuse the same changes to
//! immutable tables as a second wall.
#![deny(unsafe_code)]

pub mod sqlite;

pub use sqlite::SqliteStore;
