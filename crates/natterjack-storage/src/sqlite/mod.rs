//! The SQLite implementation of the storage port: the embedded default.

mod audit;
pub mod authorizer;
mod connections;
mod errors;
pub mod migrate;
mod sealed;
mod store;

pub use connections::Lease;
pub use store::SqliteStore;
