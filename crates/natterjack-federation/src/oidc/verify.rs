//! The checks of one token against its issuer: a signature by one of the issuer's current
//! keys with an allowed algorithm, the `typ` of its kind when present, `iss` exactly, `aud`
//! containing the expected audience, `exp`, `nbf` and `iat` against this process's clock
//! with the configured skew, and a `sub`. An access token (RFC 9068 §4) is for the API's
//! audience; an ID token (checked further in [`super::id_token`]) is for the console's
//! client. Either way the verified claims map to a local account by the same rule.

use super::keys::{KeyError, Keys};
use super::settings::Issuer;
use super::token::Unverified;
use jsonwebtoken::{Algorithm, Validation};
use natterjack_core::auth::{AuthFailure, ExternalIdentity, LinkedAccounts};
use natterjack_core::clock::SharedClock;
use natterjack_core::principal::Principal;
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

/// Which kind of token is checked: it decides the `typ` accepted and the audience.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind<'a> {
    /// A JWT access token for this API (`typ` `at+jwt` when present, `aud` the configured
    /// audience).
    AccessToken,
    /// An ID token for the console's client (`typ` `JWT` when present, `aud` the client id),
    /// so that neither kind is accepted in place of the other.
    IdToken {
        /// The console's client id.
        client_id: &'a str,
    },
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

    /// Verifies the access token `token`, whose header and issuer `peeked` holds.
    pub(crate) async fn verify(
        &self,
        token: &str,
        peeked: &Unverified,
    ) -> Result<Verified, TokenError> {
        let claims = self.claims(token, peeked, Kind::AccessToken).await?;
        self.identity(&claims)
    }

    /// The claims of `token`, a token of `kind` whose header and issuer `peeked` holds, once
    /// its signature, `typ`, `iss`, `aud` and times are checked.
    pub(crate) async fn claims(
        &self,
        token: &str,
        peeked: &Unverified,
        kind: Kind<'_>,
    ) -> Result<Map<String, Value>, TokenError> {
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
            match kind {
                Kind::AccessToken if typ != "at+jwt" && typ != "application/at+jwt" => {
                    return Err(invalid("not an access token (typ)"));
                }
                Kind::IdToken { .. } if typ != "jwt" && typ != "application/jwt" => {
                    return Err(invalid("not an ID token (typ)"));
                }
                _ => {}
            }
        }
        let audience = match kind {
            Kind::AccessToken => self.issuer.audience.as_str(),
            Kind::IdToken { client_id } => client_id,
        };
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
        validation.set_audience(&[audience]);
        // Time is checked below against this process's clock, with the configured skew.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims =
            HashSet::from(["exp", "iss", "aud", "sub"].map(String::from));
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| invalid(reason(e.kind())))?;
        let claims = data.claims;
        self.check_times(&claims)?;
        Ok(claims)
    }

    /// Who verified `claims` name: `sub`, the username claim, and whether the admin claim
    /// makes them an admin.
    pub(crate) fn identity(&self, claims: &Map<String, Value>) -> Result<Verified, TokenError> {
        let invalid = TokenError::Invalid;
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

    /// The principal of a verified identity of this issuer: the local account linked to the
    /// issuer and `sub` (created first when this issuer provisions accounts), an admin when
    /// the account or the admin claim says so.
    pub(crate) async fn principal(
        &self,
        accounts: &LinkedAccounts,
        verified: &Verified,
    ) -> Result<Principal, AuthFailure> {
        accounts
            .principal(
                ExternalIdentity {
                    source: &self.issuer.issuer,
                    subject: &verified.subject,
                    name: verified.name.as_deref(),
                    admin: verified.admin,
                },
                self.issuer.provisioning,
            )
            .await
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
