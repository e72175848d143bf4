//! A panic in a handler becomes a generic 500 problem, logged with the request id.

use crate::problem::Problem;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::StatusCode;
use std::panic::AssertUnwindSafe;

/// Runs the handler, catching a panic. The payload is logged (it is our own code's message)
/// but never sent to the client.
pub async fn catching(handler: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(response) => response,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            tracing::error!(request_id = %crate::pipeline::request_id::current(), panic = %message, "handler panicked");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, None).into_response()
        }
    }
}
