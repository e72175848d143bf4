//! A JWT access token taken apart before its signature is checked: only to choose the
//! issuer and key, and to refuse what no key could make acceptable. Nothing read here is
//! trusted until [`super::verify`] has checked the signature.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Tokens longer than this are refused unread.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The parts of a token that pick how to verify it.
#[derive(Debug)]
pub(crate) struct Unverified {
    /// The header's `alg`, as written.
    pub(crate) alg: String,
    /// The header's `kid`.
    pub(crate) kid: Option<String>,
    /// The header's `typ`.
    pub(crate) typ: Option<String>,
    /// The payload's `iss`.
    pub(crate) iss: Option<String>,
}

fn part(segment: &str) -> Result<Map<String, Value>, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| "malformed token")?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err("malformed token"),
    }
}

fn text(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Reads header and issuer of a compact JWS (three base64url parts).
pub(crate) fn peek(token: &str) -> Result<Unverified, &'static str> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("token too long");
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed token");
    };
    let header = part(header)?;
    let payload = part(payload)?;
    Ok(Unverified {
        alg: text(&header, "alg").ok_or("malformed token")?,
        kid: text(&header, "kid"),
        typ: text(&header, "typ"),
        iss: text(&payload, "iss"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn header_and_issuer_are_read_without_trusting_them() {
        let t = token(
            r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#,
            r#"{"iss":"https://id.example","sub":"x"}"#,
        );
        let u = peek(&t).unwrap();
        assert_eq!(u.alg, "ES256");
        assert_eq!(u.kid.as_deref(), Some("k1"));
        assert_eq!(u.typ.as_deref(), Some("at+jwt"));
        assert_eq!(u.iss.as_deref(), Some("https://id.example"));
    }

    #[test]
    fn anything_but_three_base64url_json_parts_is_malformed() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.c2ln",
            &token("[]", "{}"),
            &token("{}", "{}"),
        ] {
            assert!(peek(bad).is_err(), "{bad}");
        }
        assert_eq!(
            peek(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
            "token too long"
        );
    }
}
