//! The checks of one access token against its issuer (RFC 9068 §4): a signature by one of
//! the issuer's current keys with an allowed algorithm, `typ` `at+jwt` when present, `iss`
//! exactly, `aud` containing the audience, `exp`, `nbf` and `iat` against this process's
//! clock with the configured skew, and a `sub`.

use super::keys::{KeyError, Keys};
use super::settings::Issuer;
use super::token::Unverified;
use jsonwebtoken::{Algorithm, Validation};
use natterjack_core::clock::SharedClock;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Why a token was not accepted.
#[derive(Debug)]
pub(crate) enum TokenError {
    /// The token failed a check; the reason is safe to audit.
    Invalid(&'static str),
    /// The issuer's keys could not be fetched.
    Unavailable(String),
}

/// What a valid token says about its holder.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) subject: String,
    pub(crate) name: Option<String>,
    pub(crate) admin: bool,
}

/// One trusted issuer: its settings and key cache.
pub(crate) struct IssuerVerifier {
    pub(crate) issuer: Issuer,
    pub(crate) keys: Keys,
    clock: SharedClock,
}

impl IssuerVerifier {
    pub(crate) fn new(issuer: Issuer, keys: Keys, clock: SharedClock) -> Self {
        Self {
            issuer,
            keys,
            clock,
        }
    }

    /// Verifies `token`, whose header and issuer `peeked` holds.
    pub(crate) async fn verify(
        &self,
        token: &str,
        peeked: &Unverified,
    ) -> Result<Verified, TokenError> {
        let invalid = TokenError::Invalid;
        if peeked.alg.eq_ignore_ascii_case("none")
            || peeked.alg.to_ascii_uppercase().starts_with("HS")
        {
            return Err(invalid("algorithm not allowed"));
        }
        let alg: Algorithm = peeked
            .alg
            .parse()
            .map_err(|_| invalid("algorithm not allowed"))?;
        if !self.issuer.algorithms.contains(&alg) {
            return Err(invalid("algorithm not allowed"));
        }
        if let Some(typ) = &peeked.typ {
            let typ = typ.to_ascii_lowercase();
            if typ != "at+jwt" && typ != "application/at+jwt" {
                return Err(invalid("not an access token (typ)"));
            }
        }
        let kid = peeked.kid.as_deref().ok_or(invalid("no key id (kid)"))?;
        let key = match self.keys.key(kid).await {
            Ok(key) => key,
            Err(KeyError::Unknown) => return Err(invalid("unknown signing key")),
            Err(KeyError::Unavailable(e)) => return Err(TokenError::Unavailable(e)),
        };
        if key.algorithm.is_some_and(|pinned| pinned != alg) {
            return Err(invalid("algorithm not allowed"));
        }
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.set_issuer(&[&self.issuer.issuer]);
        validation.set_audience(&[&self.issuer.audience]);
        // Time is checked below against this process's clock, with the configured skew.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims =
            HashSet::from(["exp", "iss", "aud", "sub"].map(String::from));
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| invalid(reason(e.kind())))?;
        let claims = data.claims;
        self.check_times(&claims)?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(invalid("no subject (sub)"))?
            .to_owned();
        let name = claims
            .get(&self.issuer.username_claim)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let admin =
            self.issuer
                .admin
                .as_ref()
                .is_some_and(|(claim, value)| match claims.get(claim) {
                    Some(Value::String(s)) => s == value,
                    Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(value)),
                    _ => false,
                });
        Ok(Verified {
            subject,
            name,
            admin,
        })
    }

    fn check_times(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let now = self.clock.wall().micros() / 1_000_000;
        let skew = i64::try_from(self.issuer.skew.as_secs()).unwrap_or(i64::MAX);
        let time = |name: &str| claims.get(name).and_then(Value::as_i64);
        let exp = time("exp").ok_or(TokenError::Invalid("no expiry (exp)"))?;
        if now > exp.saturating_add(skew) {
            return Err(TokenError::Invalid("expired"));
        }
        if time("nbf").is_some_and(|nbf| now < nbf.saturating_sub(skew)) {
            return Err(TokenError::Invalid("not yet valid"));
        }
        if time("iat").is_some_and(|iat| now < iat.saturating_sub(skew)) {
            return Err(TokenError::Invalid("issued in the future"));
        }
        Ok(())
    }
}

/// The audited reason for a refusal by the JWT library.
fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::MissingRequiredClaim(_) => "missing a required claim",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "algorithm not allowed",
        _ => "malformed token",
    }
}
