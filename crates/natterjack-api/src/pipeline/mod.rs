//! The request pipeline, in one place.
//!
//! Order of the request path (outermost first), identical for every route:
//!
//! | step | control | where |
//! | --- | --- | --- |
//! | 1 | transport: TLS, connection caps, handshake, header-read and idle deadlines, stream cap | [`crate::transport`] |
//! | 1 | request timeout | [`secure_pipeline`] |
//! | 2 | rate limiting: the first control, before headers, bodies or hashing | [`rate_limit`] |
//! | 3 | hygiene: one valid `Host` 400, header limits 431, body limit 413, JSON content type 415 | [`host`], [`hygiene`] |
//! | 4 | authentication: Basic → `Caller` (400 malformed, 401 wrong) | [`authn`] |
//! | 5 | audit: a durable intent record before any state change | [`audit`] |
//! | 6 | access control: the permission each route declares | [`acl`] |
//! | 7 | validated input: strict JSON into domain types | [`crate::rest::extract`] |
//! | 8 | service and storage | `natterjack-core`, `natterjack-storage` |
//! | 9 | safe output: problem+json errors, security headers | [`safe_output`], [`headers`] |
//!
//! The response-side steps (security headers, request id, panic catching, problem bodies for
//! errors made by layers) wrap everything, so they also cover responses that an earlier
//! step refused.

pub mod acl;
pub mod audit;
pub mod authn;
pub mod headers;
pub mod host;
pub mod hygiene;
pub mod panic;
pub mod rate_limit;
pub mod request_id;
pub mod safe_output;

use crate::AppState;
use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

/// Largest request body accepted, in bytes (413 beyond).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Most header fields a request may carry (431 beyond).
pub const MAX_HEADER_FIELDS: usize = 100;

/// Largest header list accepted, counted as HTTP/2 counts it (RFC 9113 §6.5.2: name, value
/// and 32 bytes per field), for HTTP/1.1 and HTTP/2 alike (431 beyond).
pub const MAX_HEADER_LIST_BYTES: usize = 16 * 1024;

/// Limits applied inside the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct PipelineLimits {
    /// Time allowed for a whole request, handler included (408 beyond).
    pub request_timeout: Duration,
}

impl Default for PipelineLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Wraps `routes` in the security pipeline. Every route of every REST router goes through
/// here; there is no other way to build the application, so no handler can opt out.
pub fn secure_pipeline(
    routes: Router<AppState>,
    state: AppState,
    limits: PipelineLimits,
) -> Router {
    let controls = ServiceBuilder::new()
        // 9 (response side): the security headers on every response, errors included.
        .layer(from_fn(headers::stamp))
        // A request id for logs and problem bodies, then panics turned into a 500 problem.
        .layer(from_fn(request_id::assign))
        // Every request's `complete` audit record, whatever refuses it further in.
        .layer(from_fn_with_state(state.clone(), audit::record_requests))
        .layer(from_fn(panic::catch))
        // 9: errors produced by layers (405, 408, 413) get a problem body too.
        .layer(from_fn(safe_output::problem_for_bare_errors))
        // 1: the whole request must finish in time.
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        // 2: rate limiting, before anything reads credentials or bodies.
        .layer(from_fn_with_state(state.clone(), rate_limit::limit_clients))
        // 3: hygiene: one valid Host, then header and body limits and the JSON type.
        .layer(from_fn(host::require_valid_host))
        .layer(from_fn(hygiene::require_json_bodies))
        // 4: authentication.
        .layer(from_fn_with_state(state.clone(), authn::authenticate))
        // 5: audit: the intent of a state change is committed before it can happen.
        .layer(from_fn_with_state(state.clone(), audit::record_intent));
    // 6: access control is declared per route (see `rest::routes`) and runs after these.
    routes
        .fallback(safe_output::no_such_route)
        .layer(controls)
        .with_state(state)
}
