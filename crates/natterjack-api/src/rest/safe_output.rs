//! Safe output for responses that did not come from a handler.

use crate::problem::{PROBLEM_JSON, Problem};
use crate::rest::error::ApiError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

/// Gives any error response without a problem body (a 405 from the router, a 408 from the
/// timeout, a 413 from the body limit) the problem body of its status, keeping headers such
/// as `Allow`. Nothing a lower layer wrote in its body is passed on.
pub fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let problem = Problem::new(status, None).into_response();
    let (_, body) = problem.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, body)
}

/// The fallback for paths no route matches.
pub async fn no_such_route() -> Response {
    ApiError::NoSuchRoute.into_response()
}
