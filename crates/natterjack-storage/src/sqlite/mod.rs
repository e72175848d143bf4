//! The SQLite implementation of the storage port: the embedded default, on rusqlite.
//!
//! Reads run on the caller's thread ([`readers`]); writes run on one writer thread that
//! commits them in groups ([`writer`]). Both kinds of connection are under the
//! [`authorizer`]; migrations and the operator's key changes use an owner connection
//! without it. Each sink's exporter holds a `flock` on a file beside the database
//! ([`SqliteExportLeases`]), so that one server on the file exports it.

mod audit;
pub mod authorizer;
mod connect;
mod errors;
mod export_lease;
mod invalidations;
pub mod migrate;
mod readers;
mod sealed;
mod sessions;
mod store;
mod writer;

pub use export_lease::SqliteExportLeases;
pub use invalidations::SqliteInvalidations;
pub use store::SqliteStore;
