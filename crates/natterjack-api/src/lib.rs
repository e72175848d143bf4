//! # natterjack-api
//!
//! The security pipeline and the REST adapter. Requests pass the controls of DESIGN §2 in
//! one fixed order, written once in [`pipeline::secure_pipeline`]; REST handlers in [`rest`]
//! are thin adapters that turn HTTP into domain types and call the one service layer of
//! `natterjack-core`. [`server`] runs the HTTPS listener (TLS 1.2/1.3 only, HTTP/1.1 and
//! HTTP/2 by ALPN) with connection, handshake and header-read limits.
#![forbid(unsafe_code)]

pub mod grpc;
pub mod metrics;
pub mod pipeline;
pub mod problem;
pub mod rest;
pub mod server;
mod state;

pub use state::AppState;
