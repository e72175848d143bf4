//! The integration tests of the `natterjack` binary, in one test binary, so that the server
//! and its dependencies link once rather than once per area. Each module is one area; run one
//! with a filter: `cargo test -p natterjack --test it grpc::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access_control;
mod alerts;
mod audit;
mod audit_export;
mod audit_volume;
mod authentication;
mod cli;
mod connections;
mod grpc;
mod grpc_python;
mod metrics;
mod openapi;
mod postgres;
mod rate_limiting;
mod readme;
mod safe_output;
mod siem;
mod transport;
mod validation;
mod verification_cache;
