//! The security headers, stamped on every response.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::LazyLock;

/// The header set, as (name, value). One table, so tests and docs refer to the same list.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; sandbox",
    ),
    // `max-age=0` and `Pragma` for caches that predate `no-store` (HTTP/1.0 proxies).
    ("cache-control", "no-store, max-age=0"),
    ("pragma", "no-cache"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-xss-protection", "0"),
];

/// Headers that identify the software; removed from every response (named once, not
/// parsed from text on each).
const IDENTIFYING: [HeaderName; 2] = [
    HeaderName::from_static("server"),
    HeaderName::from_static("x-powered-by"),
];

/// [`SECURITY_HEADERS`] parsed once: every response gets them, and parsing a name (its
/// check and its lookup among the standard names) on every response was a visible share of
/// a small answer's cost.
static PARSED: LazyLock<Vec<(HeaderName, HeaderValue)>> = LazyLock::new(|| {
    SECURITY_HEADERS
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
});

/// Overrides each security header (a handler cannot weaken one by setting its own value)
/// and strips identifying headers.
pub fn apply(headers: &mut HeaderMap) {
    headers.reserve(SECURITY_HEADERS.len());
    for (name, value) in PARSED.iter() {
        headers.insert(name.clone(), value.clone());
    }
    for name in &IDENTIFYING {
        headers.remove(name);
    }
}

/// [`apply`] as middleware, for routers outside the REST pipeline (the internal listener).
pub async fn stamp(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    apply(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn apply_overrides_a_weakened_security_header_strips_identifying_ones_and_keeps_the_rest() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("ALLOWALL"),
        );
        headers.append(header::CACHE_CONTROL, HeaderValue::from_static("public"));
        headers.append(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=600"),
        );
        headers.insert(header::SERVER, HeaderValue::from_static("natterjack/0.1"));
        headers.insert("x-powered-by", HeaderValue::from_static("rust"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        apply(&mut headers);
        for (name, value) in SECURITY_HEADERS {
            let values: Vec<_> = headers.get_all(*name).iter().collect();
            assert_eq!(values, [*value], "{name}");
        }
        assert!(!headers.contains_key(header::SERVER));
        assert!(!headers.contains_key("x-powered-by"));
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM);
        let cookies: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(headers.len(), SECURITY_HEADERS.len() + 3);
    }

    const PROBLEM: &str = "application/problem+json";
}
