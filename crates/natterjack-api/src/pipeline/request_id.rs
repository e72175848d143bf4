//! A random id per request, available to every error body and log line of that request.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use rand::RngCore;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The response header that carries the id back to the client.
pub const HEADER: &str = "x-request-id";

/// The id of the request being handled on this task (empty outside a request).
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// A new random id: 128 bits from the OS, as 32 hex digits.
pub fn fresh() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Assigns a fresh id (never one chosen by the client, which could forge log entries),
/// scopes it over the rest of the pipeline, and returns it in `x-request-id`.
pub async fn assign(req: Request, next: Next) -> Response {
    let id = fresh();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut response = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(req), span),
        )
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
