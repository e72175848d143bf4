//! Thin adapters: HTTP in, domain types to the service layer, views out.

pub(super) mod audit;
pub(super) mod health;
pub(super) mod members;
pub(super) mod messages;
pub(super) mod spaces;
pub(super) mod users;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// A 201 with a `Location` header and a JSON body.
pub(super) fn created(location: &str, body: impl serde::Serialize) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
