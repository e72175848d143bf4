//! The checks of an ID token beyond those every token of the issuer gets (OpenID Connect
//! Core §3.1.3.7): `aud` holds the console's client id (through [`Kind::IdToken`]), `azp`
//! is that client when present and is present when there are several audiences, `iat` is
//! present, and `nonce` is the pending login's, compared in constant time.

use super::refusal::LoginRefusal;
use super::token::peek;
use super::verify::{IssuerVerifier, Kind, TokenError, Verified};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use subtle::ConstantTimeEq;

/// The identity `id_token` verifies, for the client `client_id` and the login of `nonce`.
pub(crate) async fn verify(
    verifier: &IssuerVerifier,
    id_token: &SecretString,
    client_id: &str,
    nonce: &SecretString,
) -> Result<Verified, LoginRefusal> {
    let id_token = id_token.expose_secret();
    let peeked = peek(id_token).map_err(LoginRefusal::IdToken)?;
    if peeked.iss.as_deref() != Some(verifier.issuer.issuer.as_str()) {
        return Err(LoginRefusal::IdToken("wrong issuer"));
    }
    let claims = verifier
        .claims(id_token, &peeked, Kind::IdToken { client_id })
        .await
        .map_err(|e| match e {
            TokenError::Invalid(reason) => LoginRefusal::IdToken(reason),
            TokenError::Unavailable(detail) => {
                tracing::warn!(issuer = %verifier.issuer.issuer, error = %detail, "ID token not checked: issuer keys unavailable");
                LoginRefusal::Unavailable("issuer keys unavailable")
            }
        })?;
    if !claims.get("iat").is_some_and(Value::is_i64) {
        return Err(LoginRefusal::IdToken("no issue time (iat)"));
    }
    let audiences = match claims.get("aud") {
        Some(Value::Array(items)) => items.len(),
        _ => 1,
    };
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => {}
        Some(_) => return Err(LoginRefusal::IdToken("wrong authorized party (azp)")),
        None if audiences > 1 => {
            return Err(LoginRefusal::IdToken(
                "several audiences and no authorized party (azp)",
            ));
        }
        None => {}
    }
    let returned = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(LoginRefusal::NonceMismatch)?;
    if !bool::from(returned.as_bytes().ct_eq(nonce.expose_secret().as_bytes())) {
        return Err(LoginRefusal::NonceMismatch);
    }
    verifier.identity(&claims).map_err(|e| match e {
        TokenError::Invalid(reason) => LoginRefusal::IdToken(reason),
        TokenError::Unavailable(_) => LoginRefusal::Unavailable("issuer keys unavailable"),
    })
}
