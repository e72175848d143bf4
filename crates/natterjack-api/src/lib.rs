//! # natterjack-api
//!
//! The security pipeline and the REST and gRPC adapters. Requests pass the controls in one
//! fixed order, written once in [`pipeline`]; REST handlers in [`rest`]
//! and gRPC services in [`grpc`] are thin adapters that turn their wire format into domain
//! types and call the one service layer of `natterjack-core`. [`transport`] runs the
//! public listeners (TLS 1.2/1.3 only; HTTP/1.1 and HTTP/2 by ALPN, or gRPC over HTTP/2)
//! with their connection caps, handshake, header-read and idle deadlines.
#![forbid(unsafe_code)]

pub mod grpc;
pub mod lifecycle;
pub mod metrics;
pub mod pipeline;
pub mod problem;
pub mod rest;
pub mod schemes;
mod state;
pub mod transport;

pub use state::AppState;
