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

/// Headers that identify the software; removed from every response.
const IDENTIFYING: &[&str] = &["server", "x-powered-by"];

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
    for name in IDENTIFYING {
        headers.remove(*name);
    }
}

/// [`apply`] as middleware, for routers outside the REST pipeline (the internal listener).
pub async fn stamp(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    apply(response.headers_mut());
    response
}
