//! The security headers, stamped on every response.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};

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

/// Overrides each security header on the way out (a handler cannot weaken one by setting
/// its own value) and strips identifying headers.
pub async fn stamp(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    for name in IDENTIFYING {
        headers.remove(*name);
    }
    response
}
