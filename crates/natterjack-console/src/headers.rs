//! The console's header policy. The JSON API keeps its own (a sandboxed CSP that loads
//! nothing); pages need their stylesheet and inline SVG, and forms that post to themselves.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::LazyLock;

/// The content security policy of every console response: no script from anywhere (the
/// pages have none), styles and images only from this origin, forms only to this origin,
/// no framing (clickjacking), no `<base>` rewriting.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The header set of every console response, errors included.
pub const CONSOLE_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store, max-age=0"),
    ("pragma", "no-cache"),
    // Not `no-referrer`: under that policy a browser sends `Origin: null` with the console's
    // own form POSTs, which the adapter's origin check must refuse. `same-origin` still sends
    // no referrer to any other site.
    ("referrer-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-xss-protection", "0"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];

static PARSED: LazyLock<Vec<(HeaderName, HeaderValue)>> = LazyLock::new(|| {
    CONSOLE_HEADERS
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
});

/// Sets every console header (a page cannot weaken one) and strips identifying ones.
pub fn apply(headers: &mut HeaderMap) {
    for (name, value) in PARSED.iter() {
        headers.insert(name.clone(), value.clone());
    }
    headers.remove("server");
    headers.remove("x-powered-by");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_referrer_policy_lets_a_browser_name_the_console_s_origin_on_its_own_forms() {
        // Under `no-referrer` (or `strict-origin` over plain HTTP) the Fetch standard makes a
        // form POST carry `Origin: null`, and every same-origin form would be refused.
        let mut headers = HeaderMap::new();
        apply(&mut headers);
        assert_eq!(headers["referrer-policy"], "same-origin");
    }
}
