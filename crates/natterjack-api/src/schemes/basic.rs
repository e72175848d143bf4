//! HTTP Basic (RFC 7617): an `Authorization` value becomes a [`Credential`]. Parsing is all
//! a transport does; verification is the core's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};
use natterjack_core::auth::Credential;
use secrecy::SecretString;
use zeroize::Zeroizing;

/// The challenge sent with every 401.
pub const CHALLENGE: &str = r#"Basic realm="natterjack", charset="UTF-8""#;

/// Longest `Authorization` header accepted; a 30-byte name and a 256-byte password fit in
/// well under this after base64.
const MAX_AUTHORIZATION_BYTES: usize = 1024;

/// Credentials taken from a Basic header. The password is secret from the moment it is
/// decoded; the decoded buffer is zeroised on drop.
pub struct BasicCredentials {
    /// The user-id part, before the first colon.
    pub username: String,
    /// The password part.
    pub password: SecretString,
}

/// Why an `Authorization` header could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum CredentialsError {
    /// Not valid Basic syntax: a 400, since no credentials were actually presented.
    Malformed,
    /// Another scheme: answered with a 401 and the Basic challenge.
    UnsupportedScheme,
}

/// Parses the `Authorization` header: `None` when absent.
pub fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<BasicCredentials>, CredentialsError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() || value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(CredentialsError::Malformed);
    }
    let value = value.to_str().map_err(|_| CredentialsError::Malformed)?;
    basic_value(value).map(Some)
}

/// Parses one `Basic <base64(user:password)>` value.
pub fn basic_value(value: &str) -> Result<BasicCredentials, CredentialsError> {
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(CredentialsError::Malformed);
    }
    let (scheme, token) = value.split_once(' ').ok_or(CredentialsError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(CredentialsError::UnsupportedScheme);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(CredentialsError::Malformed);
    }
    let decoded = Zeroizing::new(
        STANDARD
            .decode(token)
            .map_err(|_| CredentialsError::Malformed)?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| CredentialsError::Malformed)?;
    let (username, password) = text.split_once(':').ok_or(CredentialsError::Malformed)?;
    if username.chars().any(char::is_control) || password.chars().any(char::is_control) {
        return Err(CredentialsError::Malformed);
    }
    Ok(BasicCredentials {
        username: username.to_owned(),
        password: SecretString::from(password),
    })
}

impl From<BasicCredentials> for Credential {
    fn from(c: BasicCredentials) -> Self {
        Credential::Password {
            username: c.username,
            password: c.password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use secrecy::ExposeSecret;

    fn header_of(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn a_well_formed_basic_header_yields_the_name_and_a_password_that_may_contain_colons() {
        let token = STANDARD.encode("alice:pa:ss wörd");
        let parsed = basic_credentials(&header_of(&format!("bAsIc {token}")));
        let creds = parsed
            .ok()
            .flatten()
            .map(|c| (c.username, c.password.expose_secret().to_owned()));
        assert_eq!(creds, Some(("alice".to_owned(), "pa:ss wörd".to_owned())));
    }

    #[test]
    fn malformed_basic_headers_are_refused() {
        for bad in [
            "Basic".to_owned(),
            "Basic ".to_owned(),
            "Basic !!!notbase64".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon")),
            format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x'])),
            format!("Basic {}", STANDARD.encode("al\u{0}ice:pw")),
            format!("Basic {} extra", STANDARD.encode("a:b")),
            format!("Basic {}", "A".repeat(2000)),
        ] {
            assert_eq!(
                basic_credentials(&header_of(&bad)).err(),
                Some(CredentialsError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_schemes_are_unsupported_rather_than_malformed() {
        assert_eq!(
            basic_credentials(&header_of("Bearer abc")).err(),
            Some(CredentialsError::UnsupportedScheme)
        );
    }
}
