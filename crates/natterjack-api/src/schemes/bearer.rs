//! The `Bearer` scheme's syntax (RFC 6750 §2.1), shared by the REST `Authorization` header
//! and gRPC's `authorization` metadata. Only the syntax: what the token means is the core's
//! identity providers' business.

use secrecy::SecretString;

/// Longest bearer token accepted: JWT access tokens with a few claims are 1–2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The token of an `Authorization` value `Bearer <token68>`; `None` for another scheme.
/// `Some(Err(()))` when the scheme is Bearer but the token is not token68 syntax.
pub fn bearer_token(value: &str) -> Option<Result<SecretString, ()>> {
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let token68 = !body.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    Some(if token68 {
        Ok(SecretString::from(token))
    } else {
        Err(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_bearer_value_yields_its_token_whatever_the_scheme_case() {
        let token = bearer_token("bEaReR abc.DEF-_~+/=").unwrap().unwrap();
        assert_eq!(token.expose_secret(), "abc.DEF-_~+/=");
    }

    #[test]
    fn other_schemes_are_not_bearer() {
        assert!(bearer_token("Basic YTpi").is_none());
        assert!(bearer_token("Bearerx abc").is_none());
    }

    #[test]
    fn tokens_outside_token68_are_malformed() {
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ====",
            "Bearer a\"b",
            &format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1)),
        ] {
            assert!(matches!(bearer_token(bad), Some(Err(()))), "{bad}");
        }
    }
}
