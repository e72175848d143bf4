//! The integration tests of the `natterjack` binary, in one test binary, so that the server
//! and its dependencies link once rather than once per area. Each module is one area; run one
//! with a filter: `cargo test -p natterjack --test it grpc::`.
// Tests time a real server from outside, so they read the real clock, and play the operator
// where a test needs one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

mod access_control;
mod alerts;
mod audit;
mod audit_export;
mod audit_volume;
mod authentication;
mod bearer_tokens;
mod browser_harness;
mod certificate_reload;
mod cli;
mod connections;
mod console_browser;
mod console_sessions;
mod console_sign_on;
mod directory_logins;
mod docs_examples;
mod encryption_at_rest;
mod export_lease;
mod grpc;
mod grpc_python;
mod grpc_refusals;
mod ldap_directory;
mod load_balancer;
mod message_feed;
mod metrics;
mod oidc_code_flow;
mod openapi;
mod peers;
mod pipeline_order;
mod postgres;
mod rate_limiting;
mod read_cache;
mod readme;
mod safe_output;
mod shared_limits;
mod shutdown;
mod siem;
mod transport;
mod transport_responses;
mod validation;
mod verification_cache;
