//! The secret a browser holds ([`SessionToken`]) and what the server keeps of it
//! ([`SessionKey`], its SHA-256): a copy of the database gives no one a usable session.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Random bytes in a token: 256 bits, twice the 128 that guessing would need.
const TOKEN_BYTES: usize = 32;

/// Length of a token in the cookie (base64url without padding of [`TOKEN_BYTES`]).
const TOKEN_CHARS: usize = 43;

/// Domain separation of the CSRF token from the session key: both are hashes of the same
/// secret, and neither may be computed from the other.
const CSRF_CONTEXT: &[u8] = b"natterjack console csrf v1\0";

/// The secret of one browser session (or of one pending sign-on), as sent in its cookie.
/// Never logged, audited or stored; `Debug` shows nothing.
pub struct SessionToken(SecretString);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

impl SessionToken {
    /// A fresh token from the operating system's random source. A login always gets a new
    /// one, so an identifier planted before it (session fixation) is never kept.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self(SecretString::from(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
    }

    /// A token as a cookie carried it, or `None` when it cannot be one of ours (wrong length
    /// or alphabet): such a value is not even looked up.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != TOKEN_CHARS {
            return None;
        }
        let decoded = Zeroizing::new(URL_SAFE_NO_PAD.decode(value).ok()?);
        (decoded.len() == TOKEN_BYTES).then(|| Self(SecretString::from(value.to_owned())))
    }

    /// The value for the `Set-Cookie` header, the one place the secret leaves the server.
    pub fn cookie_value(&self) -> &str {
        self.0.expose_secret()
    }

    /// What the server stores and looks sessions up by.
    pub fn key(&self) -> SessionKey {
        SessionKey(Sha256::digest(self.0.expose_secret().as_bytes()).into())
    }

    /// The CSRF token of this session: put in every form, and required back with every
    /// state change. Derived from the secret, so another site can neither read nor compute
    /// it, and every node of a deployment checks it without shared state.
    pub fn csrf(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(CSRF_CONTEXT);
        hash.update(self.0.expose_secret().as_bytes());
        URL_SAFE_NO_PAD.encode(hash.finalize())
    }

    /// Whether `submitted` is this session's CSRF token, compared in constant time.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        let expected = self.csrf();
        expected.len() == submitted.len()
            && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
    }
}

/// The SHA-256 of a [`SessionToken`]: the row key of a session. Its hex form is what the
/// operator sees (`natterjack sessions list`) and revokes by; the first 16 hex digits name
/// the session in the audit trail. None of them lets anyone present the session.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKey({})", self.short())
    }
}

impl SessionKey {
    /// The key from its stored bytes; `None` unless exactly 32.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The key as the operator typed it (64 hex digits, either case).
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// All 64 hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 16 hex digits: how the audit trail names the session.
    pub fn short(&self) -> String {
        self.hex()[..16].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_and_keys_the_same() {
        let token = SessionToken::generate();
        let again = SessionToken::parse(token.cookie_value()).unwrap();
        assert_eq!(token.key(), again.key());
        assert_ne!(token.key(), SessionToken::generate().key());
    }

    #[test]
    fn values_that_cannot_be_tokens_are_not_parsed() {
        for value in ["", "short", &"A".repeat(44), &"*".repeat(43)] {
            assert!(SessionToken::parse(value).is_none(), "{value}");
        }
    }

    #[test]
    fn the_csrf_token_matches_only_its_own_session() {
        let token = SessionToken::generate();
        assert!(token.csrf_matches(&token.csrf()));
        assert!(!token.csrf_matches(&SessionToken::generate().csrf()));
        assert!(!token.csrf_matches(""));
        assert_ne!(token.csrf(), token.key().hex());
    }

    #[test]
    fn a_key_round_trips_through_its_hex_form() {
        let key = SessionToken::generate().key();
        assert_eq!(SessionKey::from_hex(&key.hex()), Some(key));
        assert_eq!(SessionKey::from_hex(&key.hex().to_uppercase()), Some(key));
        assert!(SessionKey::from_hex("zz").is_none());
        assert_eq!(key.short().len(), 16);
    }

    #[test]
    fn debug_shows_no_secret() {
        let token = SessionToken::generate();
        assert!(!format!("{token:?}").contains(token.cookie_value()));
    }
}
