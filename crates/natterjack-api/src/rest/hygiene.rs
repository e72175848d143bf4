//! Request hygiene before authentication: one valid `Host`, header fields within their
//! limits, bodies JSON and within theirs.

use super::error::ApiError;
use super::host::host_is_valid;
use crate::pipeline::{MAX_BODY_BYTES, MAX_HEADER_FIELDS, MAX_HEADER_LIST_BYTES};
use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Version, header};
use http_body_util::BodyExt as _;
use http_body_util::Limited;

/// True for `application/json`, optionally with `charset=utf-8` (any case, any spacing).
/// Everything else, including other charsets and JSON-ish types, is refused.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    if !media.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|param| {
        param.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("charset")
                && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        })
    })
}

/// The largest refused body that is still read (and dropped) before the 413, so that an
/// HTTP/1.1 client that sends its whole body before reading gets the answer and keeps its
/// connection. Larger bodies are not worth the bandwidth: the 413 closes the connection.
const MAX_DRAINED_BYTES: u64 = 64 * MAX_BODY_BYTES as u64;

/// True when the header fields are within [`MAX_HEADER_FIELDS`] and
/// [`MAX_HEADER_LIST_BYTES`].
///
/// The transport's own caps (`transport::MAX_TRANSPORT_HEADER_*`) sit well above these: what
/// they refuse, hyper and h2 answer themselves, with a bare 431 that no layer of ours sees.
/// Enforcing the limits here instead gives the refusal the security headers, a problem
/// body and an audit record, like every other refusal.
pub fn headers_within_limits(headers: &HeaderMap) -> bool {
    if headers.len() > MAX_HEADER_FIELDS {
        return false;
    }
    let mut bytes = 0usize;
    for (name, value) in headers {
        bytes += name.as_str().len() + value.len() + 32;
        if bytes > MAX_HEADER_LIST_BYTES {
            return false;
        }
    }
    true
}

/// Step 2 of the pipeline for REST: one valid `Host` (400), header fields within their
/// limits (431), a declared length within the body limit (413), and a JSON content type
/// on any body (415), judged from the head alone, before credentials are looked at.
///
/// `body_is_empty`: the body is known to be empty (no body, `Content-Length: 0`, or an
/// HTTP/2 stream ended with the headers), so it needs no content type.
pub fn check_form(head: &Parts, body_is_empty: bool) -> Result<(), ApiError> {
    if !host_is_valid(&head.headers, head.version) {
        return Err(ApiError::InvalidHost);
    }
    if !headers_within_limits(&head.headers) {
        return Err(ApiError::HeadersTooLarge);
    }
    if declared_length(&head.headers).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    if !body_is_empty && !is_json(&head.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The answer to a request refused by the pipeline, as far as its connection is
/// concerned: a client that got `Host` wrong is not trusted with the next request on the
/// same HTTP/1.x connection; a body left unread (431, or 413 beyond what is worth draining)
/// would be taken for the next request, so the connection closes after the answer.
pub async fn answer_refused(req: Request, error: ApiError) -> Response {
    match error {
        ApiError::InvalidHost => closing_if(true, req.version(), error.into_response()),
        ApiError::PayloadTooLarge => {
            let declared = declared_length(req.headers()).unwrap_or(u64::MAX);
            refuse_too_large(req, declared).await
        }
        other => {
            let unread = !req.body().is_end_stream();
            let close = unread && matches!(other, ApiError::HeadersTooLarge);
            closing_if(close, req.version(), other.into_response())
        }
    }
}

/// Cuts a body that declared no length off at the limit while it is read.
pub fn limit_body(req: Request) -> Request {
    req.map(|body| Body::new(Limited::new(body, MAX_BODY_BYTES)))
}

/// The 413 for a declared length over the limit. A body up to [`MAX_DRAINED_BYTES`] is read
/// and dropped first (within the request timeout, as any body); beyond that an HTTP/1.x
/// connection is closed, and the response says so.
async fn refuse_too_large(req: Request, declared: u64) -> Response {
    let version = req.version();
    let drained = declared <= MAX_DRAINED_BYTES && {
        let mut body = req.into_body();
        loop {
            match body.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(_)) => break false,
                None => break true,
            }
        }
    };
    closing_if(!drained, version, ApiError::PayloadTooLarge.into_response())
}

/// `response`, saying `Connection: close` on an HTTP/1.x connection when `close`: a request
/// body was left unread (the next request would start inside it), or the request's framing
/// is not to be trusted for the next one. HTTP/2 streams end on their own.
pub(crate) fn closing_if(close: bool, version: Version, mut response: Response) -> Response {
    if close && version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// What a request's path addresses: its parameters for the audit record's target
/// (`id=3 msgId=7`, each cleaned and cut to 64 characters), and the `{id}` segment that
/// names a space; `Err` when the path cannot be decoded. Shared by every HTTP adapter of the
/// pipeline (REST, the console).
pub async fn path_target(req: &mut Request) -> (String, Result<Option<String>, ()>) {
    match axum::RequestExt::extract_parts::<axum::extract::RawPathParams>(req).await {
        Ok(params) => (
            params
                .iter()
                .map(|(k, v)| format!("{k}={}", natterjack_core::audit::record::clean(v, 64)))
                .collect::<Vec<_>>()
                .join(" "),
            Ok(params
                .iter()
                .find(|(k, _)| *k == "id")
                .map(|(_, v)| v.to_owned())),
        ),
        Err(_) => ("(undecodable path)".to_owned(), Err(())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("x")),
        );
        h
    }

    fn fields(count: usize, value_len: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value =
            HeaderValue::from_str(&"v".repeat(value_len)).unwrap_or(HeaderValue::from_static("v"));
        for i in 0..count {
            if let Ok(name) = http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()) {
                h.append(name, value.clone());
            }
        }
        h
    }

    #[test]
    fn header_fields_up_to_the_limits_are_accepted_and_one_more_is_refused() {
        assert!(headers_within_limits(&fields(MAX_HEADER_FIELDS, 1)));
        assert!(!headers_within_limits(&fields(MAX_HEADER_FIELDS + 1, 1)));
        // One field of exactly the byte limit ("x-h0" is 4 bytes, plus 32 per field).
        let exact = MAX_HEADER_LIST_BYTES - 4 - 32;
        assert!(headers_within_limits(&fields(1, exact)));
        assert!(!headers_within_limits(&fields(1, exact + 1)));
    }

    #[test]
    fn json_content_types_with_utf8_are_accepted() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=\"UTF-8\"",
        ] {
            assert!(is_json(&with(ok)), "{ok}");
        }
    }

    #[test]
    fn other_content_types_and_charsets_are_refused() {
        for bad in [
            "text/plain",
            "application/json; charset=latin1",
            "application/jsonp",
            "application/x-www-form-urlencoded",
            "application/json; boundary=x",
        ] {
            assert!(!is_json(&with(bad)), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
