//! A panic in a handler becomes a generic 500 problem, logged with the request id.

use crate::problem::Problem;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::StatusCode;
use std::panic::AssertUnwindSafe;

/// Runs the rest of the pipeline, catching a panic. The payload is logged (it is our own
/// code's message) but never sent to the client.
pub async fn catch(req: Request, next: Next) -> Response {
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
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
