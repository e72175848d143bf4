//! TLS to PostgreSQL that trusts exactly `database.ca_file`: the file's roots (`trust.rs`),
//! the in-process forwarder that runs the handshake for sqlx (`forwarder.rs`), and the few
//! protocol bytes it speaks itself (`wire.rs`).

mod forwarder;
mod trust;
mod wire;

pub(crate) use forwarder::{TlsForwarder, Upstream};
pub(crate) use trust::{Check, client_config};
