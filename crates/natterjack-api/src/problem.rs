//! RFC 9457 problem details: the only shape an error response takes.

use crate::pipeline::request_id;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem. `detail` is always written by this codebase, never copied from an
/// internal error, so it cannot carry SQL, paths, stack traces or secrets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem kind (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// A human-readable explanation, safe to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The input field at fault, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// The id under which this request appears in the server log (and, later, the audit log).
    pub request_id: String,
}

impl Problem {
    /// A problem for `status` with an optional detail, stamped with the current request id.
    pub fn new(status: StatusCode, detail: Option<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            field: None,
            request_id: request_id::current(),
        }
    }
}

impl IntoResponse for Problem {
    /// The body serialized straight into the response, which gets its media type once
    /// (through axum's `Json` it got `application/json` first, replaced at once): every
    /// refusal of a flood is answered here.
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match serde_json::to_vec(&self) {
            Ok(body) => {
                let mut response = Response::new(Body::from(body));
                *response.status_mut() = status;
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
                response
            }
            // Serializing these fields cannot fail; if it ever did, the status alone.
            Err(_) => status.into_response(),
        }
    }
}
