//! The `Host` header rule of RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host`
//! field with a valid value, and a server answers any other with 400.
//!
//! hyper does not check it. A request without `Host`, with two, or with a malformed one is
//! either a broken client or an attempt to confuse something that routes, caches or logs by
//! host (request smuggling through a proxy that reads the other field, cache poisoning), so
//! it is refused before anything else reads it. HTTP/2 carries the authority in
//! `:authority` and may omit `Host`; when it sends one, the same rule applies to it.

use http::{HeaderMap, Version, header};
use std::net::Ipv6Addr;

/// Whether the `Host` fields of a request of `version` follow RFC 9112 §3.2.
pub fn host_is_valid(headers: &HeaderMap, version: Version) -> bool {
    let mut values = headers.get_all(header::HOST).iter();
    match (values.next(), values.next()) {
        (None, _) => version != Version::HTTP_11,
        (Some(_), Some(_)) => false,
        (Some(value), None) => value.to_str().is_ok_and(valid_value),
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IPv6 literal in brackets,
/// or a non-empty reg-name (which covers IPv4 addresses), then an optional decimal port.
fn valid_value(value: &str) -> bool {
    let (host_ok, rest) = match value.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((literal, rest)) => (literal.parse::<Ipv6Addr>().is_ok(), rest),
            None => return false,
        },
        None => {
            let (name, rest) = value.split_at(value.find(':').unwrap_or(value.len()));
            (valid_reg_name(name), rest)
        }
    };
    let port_ok = match rest.strip_prefix(':') {
        Some(port) => port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()),
        None => rest.is_empty(),
    };
    host_ok && port_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, not empty.
fn valid_reg_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)) {
            return false;
        }
        i += 1;
    }
    !bytes.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hosts(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(header::HOST, v);
            }
        }
        h
    }

    #[test]
    fn an_http11_request_needs_exactly_one_valid_host() {
        for ok in [
            "localhost",
            "localhost:8443",
            "127.0.0.1:8443",
            "[::1]:8443",
            "[2001:db8::1]",
            "api.example.org",
            "xn--bcher-kva.example",
            "a%41b",
        ] {
            assert!(host_is_valid(&hosts(&[ok]), Version::HTTP_11), "{ok}");
        }
        for bad in [
            "",
            "bad host",
            "host:port",
            "host:123456",
            "[::1",
            "[not-v6]:1",
            "user@host",
            "a/b",
            "a%4",
            ":8443",
            "host:80:80",
        ] {
            assert!(!host_is_valid(&hosts(&[bad]), Version::HTTP_11), "{bad:?}");
        }
        assert!(!host_is_valid(&hosts(&[]), Version::HTTP_11));
        assert!(!host_is_valid(
            &hosts(&["localhost", "localhost"]),
            Version::HTTP_11
        ));
    }

    #[test]
    fn http2_and_http10_may_omit_host_but_never_repeat_or_garble_it() {
        for version in [Version::HTTP_2, Version::HTTP_10] {
            assert!(host_is_valid(&hosts(&[]), version));
            assert!(host_is_valid(&hosts(&["localhost"]), version));
            assert!(!host_is_valid(&hosts(&["a", "b"]), version));
            assert!(!host_is_valid(&hosts(&["bad host"]), version));
        }
    }
}
