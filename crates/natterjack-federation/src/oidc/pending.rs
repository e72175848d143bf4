//! A login begun but not finished: the `state` that binds the callback to the browser, the
//! `nonce` that binds the ID token to this login, and the PKCE `code_verifier` that binds
//! the code to this server. All three are secrets until the login finishes: they stay in
//! [`SecretString`]s, are never in `Debug`, and leave this type only in the opaque stored
//! form the console keeps server-side (keyed by the hash of the browser's binding cookie).

use super::refusal::LoginRefusal;
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// Random bytes in each of `state`, `nonce` and `code_verifier`: 256 bits, base64url (43
/// characters; RFC 7636 §4.1 wants 43 to 128 for the verifier).
const RANDOM_BYTES: usize = 32;

/// The version of the stored form.
const STORED_VERSION: u32 = 1;

/// A pending authorization code login. Restore it with [`PendingLogin::from_stored`] and
/// hand it to [`super::CodeFlow::finish`], which consumes it: a pending login is used once.
pub struct PendingLogin {
    pub(crate) state: SecretString,
    pub(crate) nonce: SecretString,
    pub(crate) code_verifier: SecretString,
    pub(crate) redirect_uri: String,
}

/// The stored form, as written.
#[derive(Serialize)]
struct Stored<'a> {
    v: u32,
    state: &'a str,
    nonce: &'a str,
    code_verifier: &'a str,
    redirect_uri: &'a str,
}

/// The stored form, as read: every field required, nothing else allowed, the secrets never
/// in a plain `String`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Restored {
    v: u32,
    state: SecretString,
    nonce: SecretString,
    code_verifier: SecretString,
    redirect_uri: String,
}

impl PendingLogin {
    /// A new pending login returning to `redirect_uri`, with fresh random secrets.
    pub(crate) fn new(redirect_uri: &str) -> Result<Self, LoginRefusal> {
        Ok(Self {
            state: random()?,
            nonce: random()?,
            code_verifier: random()?,
            redirect_uri: redirect_uri.to_owned(),
        })
    }

    /// The PKCE `code_challenge` (method `S256`): base64url(SHA-256(verifier)).
    pub(crate) fn code_challenge(&self) -> String {
        let hash = digest::digest(
            &digest::SHA256,
            self.code_verifier.expose_secret().as_bytes(),
        );
        URL_SAFE_NO_PAD.encode(hash.as_ref())
    }

    /// The redirect URI the login began with (not a secret).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The form to store server-side until the callback (JSON, as secret as its parts).
    pub fn to_stored(&self) -> SecretString {
        let stored = Stored {
            v: STORED_VERSION,
            state: self.state.expose_secret(),
            nonce: self.nonce.expose_secret(),
            code_verifier: self.code_verifier.expose_secret(),
            redirect_uri: &self.redirect_uri,
        };
        // Serialising a struct of strings cannot fail; an empty secret would only make the
        // restore refuse it.
        SecretString::from(serde_json::to_string(&stored).unwrap_or_default())
    }

    /// The pending login kept by [`to_stored`](Self::to_stored). Refuses anything that is
    /// not exactly that form with usable values (a missing or short verifier above all).
    pub fn from_stored(stored: &str) -> Result<Self, LoginRefusal> {
        let unreadable = LoginRefusal::PendingUnreadable;
        let restored: Restored = serde_json::from_str(stored).map_err(|_| unreadable)?;
        if restored.v != STORED_VERSION
            || !usable(restored.state.expose_secret())
            || !usable(restored.nonce.expose_secret())
            || !usable(restored.code_verifier.expose_secret())
            || restored.redirect_uri.is_empty()
        {
            return Err(unreadable);
        }
        Ok(Self {
            state: restored.state,
            nonce: restored.nonce,
            code_verifier: restored.code_verifier,
            redirect_uri: restored.redirect_uri,
        })
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// A secret as this module makes them, or as RFC 7636 §4.1 allows a verifier: 43 to 128
/// unreserved characters.
fn usable(secret: &str) -> bool {
    (43..=128).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// [`RANDOM_BYTES`] from the process's crypto library, base64url.
fn random() -> Result<SecretString, LoginRefusal> {
    let mut bytes = Zeroizing::new([0_u8; RANDOM_BYTES]);
    aws_lc_rs::rand::fill(&mut bytes[..])
        .map_err(|_| LoginRefusal::Unavailable("no random numbers"))?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(&bytes[..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIRECT: &str = "https://127.0.0.1:8443/console/oidc/callback";

    #[test]
    fn debug_shows_no_secret() {
        let pending = PendingLogin::new(REDIRECT).unwrap();
        let shown = format!("{pending:?}");
        for secret in [&pending.state, &pending.nonce, &pending.code_verifier] {
            assert!(!shown.contains(secret.expose_secret()), "{shown}");
        }
        assert!(shown.contains(REDIRECT), "{shown}");
    }

    #[test]
    fn each_secret_is_fresh_and_holds_256_random_bits() {
        let a = PendingLogin::new(REDIRECT).unwrap();
        let b = PendingLogin::new(REDIRECT).unwrap();
        for secret in [&a.state, &a.nonce, &a.code_verifier] {
            assert_eq!(secret.expose_secret().len(), 43);
        }
        assert_ne!(a.state.expose_secret(), a.nonce.expose_secret());
        assert_ne!(a.state.expose_secret(), b.state.expose_secret());
        assert_ne!(
            a.code_verifier.expose_secret(),
            b.code_verifier.expose_secret()
        );
    }

    #[test]
    fn the_stored_form_restores_the_same_login() {
        let pending = PendingLogin::new(REDIRECT).unwrap();
        let restored = PendingLogin::from_stored(pending.to_stored().expose_secret()).unwrap();
        assert_eq!(
            restored.state.expose_secret(),
            pending.state.expose_secret()
        );
        assert_eq!(
            restored.nonce.expose_secret(),
            pending.nonce.expose_secret()
        );
        assert_eq!(
            restored.code_verifier.expose_secret(),
            pending.code_verifier.expose_secret()
        );
        assert_eq!(restored.redirect_uri(), REDIRECT);
        assert_eq!(restored.code_challenge(), pending.code_challenge());
    }

    #[test]
    fn the_challenge_is_the_rfc_7636_s256_of_the_verifier() {
        // RFC 7636 Appendix B.
        let pending = PendingLogin {
            state: SecretString::from("s"),
            nonce: SecretString::from("n"),
            code_verifier: SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            redirect_uri: REDIRECT.to_owned(),
        };
        assert_eq!(
            pending.code_challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_stored_login_without_a_usable_verifier_or_with_extra_fields_is_unreadable() {
        let pending = PendingLogin::new(REDIRECT).unwrap();
        let stored: serde_json::Value =
            serde_json::from_str(pending.to_stored().expose_secret()).unwrap();
        let changed = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
            let mut value = stored.clone();
            edit(value.as_object_mut().unwrap());
            PendingLogin::from_stored(&value.to_string()).unwrap_err()
        };
        for refusal in [
            changed(&|m| {
                m.remove("code_verifier");
            }),
            changed(&|m| {
                m.insert("code_verifier".into(), "".into());
            }),
            changed(&|m| {
                m.insert("code_verifier".into(), "short".into());
            }),
            changed(&|m| {
                m.insert("code_verifier".into(), "a b".repeat(20).into());
            }),
            changed(&|m| {
                m.insert("v".into(), 2.into());
            }),
            changed(&|m| {
                m.insert("extra".into(), "x".into());
            }),
        ] {
            assert_eq!(refusal, LoginRefusal::PendingUnreadable);
        }
        assert_eq!(
            PendingLogin::from_stored("not json").unwrap_err(),
            LoginRefusal::PendingUnreadable
        );
    }
}
