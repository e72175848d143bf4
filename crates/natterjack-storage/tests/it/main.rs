//! The integration tests of the storage backends, in one test binary, so that the crate and
//! its dependencies link once rather than once per area. Each module is one area; run one
//! with a filter: `cargo test -p natterjack-storage --test it contract::`.
// Tests read the real clock to time what they wait for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

mod audit_writers;
mod cache_invalidation;
mod contract;
mod escalation_rule;
mod export_lease;
mod least_privilege;
mod pg_least_privilege;
mod pg_tls;
mod sealed_content;
mod upgrade;
