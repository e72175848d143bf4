//! `[[auth.oidc]]`: one trusted OpenID Connect issuer each. Checked at start-up, so a
//! setting that would weaken token checks never reaches a running server.

use jsonwebtoken::Algorithm;
use natterjack_core::auth::Provisioning;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One `[[auth.oidc]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// The issuer URL, compared byte for byte with discovery's `issuer` and each token's
    /// `iss`. Must be `https://`.
    pub issuer: String,
    /// The audience this API is: a token's `aud` must contain it.
    pub audience: String,
    /// Signature algorithms accepted. Default `["RS256", "ES256", "EdDSA"]`. `none` and
    /// every HMAC algorithm (`HS256`, ...) are refused at start-up whatever is written here:
    /// an HMAC key would be the issuer's public key, which anyone has.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Tolerance for `exp`, `nbf` and `iat`, in seconds. Default 60.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// The claim naming the local account created on first use. Default
    /// `preferred_username`. The account is found by issuer and `sub`, never by this name.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// A claim that makes its holder an admin, with `admin_value`: a string claim equal to
    /// it, or an array claim (such as `groups`) containing it. Unset: tokens never make
    /// admins (the local account's role still applies).
    pub admin_claim: Option<String>,
    /// The value of `admin_claim` that makes an admin.
    pub admin_value: Option<String>,
    /// `existing` (default): only identities an operator linked with `natterjack user
    /// link`; `create`: an account is created and linked on first use.
    #[serde(default)]
    pub provisioning: Provisioning,
    /// A PEM file of the CA certificates that sign the issuer's TLS certificate. Default:
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The least time between two fetches of the key set caused by tokens with an unknown
    /// `kid`, in seconds. Default 30: a flood of made-up `kid`s costs the issuer at most one
    /// request per interval.
    #[serde(default = "default_refetch")]
    pub refetch_interval_secs: u64,
    /// Keys older than this are fetched again (by the next token, in the background of
    /// nothing else), so a key the issuer withdrew stops working. Default 300 seconds.
    #[serde(default = "default_max_age")]
    pub keys_max_age_secs: u64,
    /// Timeout of each request to the issuer, in milliseconds. Default 5000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256", "EdDSA"].map(String::from).to_vec()
}
fn default_skew() -> u64 {
    60
}
fn default_username_claim() -> String {
    "preferred_username".to_owned()
}
fn default_refetch() -> u64 {
    30
}
fn default_max_age() -> u64 {
    300
}
fn default_timeout() -> u64 {
    5000
}

/// Algorithms a token may be signed with at all: asymmetric ones only.
const ASYMMETRIC: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// The checked form of [`IssuerSettings`].
#[derive(Debug, Clone)]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) skew: Duration,
    pub(crate) username_claim: String,
    pub(crate) admin: Option<(String, String)>,
    pub(crate) provisioning: Provisioning,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) refetch_interval: Duration,
    pub(crate) keys_max_age: Duration,
    pub(crate) timeout: Duration,
}

impl IssuerSettings {
    /// Checks the settings; the error is a sentence for the operator naming the setting.
    pub fn check(&self) -> Result<Issuer, String> {
        let at = |what: &str| format!("auth.oidc (issuer {:?}): {what}", self.issuer);
        let url = url::Url::parse(&self.issuer).map_err(|e| at(&format!("issuer: {e}")))?;
        if url.scheme() != "https" {
            return Err(at("issuer must be an https:// URL"));
        }
        if self.audience.is_empty() {
            return Err(at("audience must not be empty"));
        }
        let mut algorithms = Vec::new();
        for name in &self.algorithms {
            match ASYMMETRIC.iter().find(|(n, _)| n == name) {
                Some((_, alg)) => algorithms.push(*alg),
                None => {
                    return Err(at(&format!(
                        "algorithms: {name:?} is not accepted (only {}; `none` and HMAC never are)",
                        ASYMMETRIC
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        if algorithms.is_empty() {
            return Err(at("algorithms must name at least one algorithm"));
        }
        let admin = match (&self.admin_claim, &self.admin_value) {
            (Some(claim), Some(value)) => Some((claim.clone(), value.clone())),
            (None, None) => None,
            _ => return Err(at("admin_claim and admin_value go together")),
        };
        if self.timeout_ms == 0 {
            return Err(at("timeout_ms must be at least 1"));
        }
        Ok(Issuer {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            algorithms,
            skew: Duration::from_secs(self.clock_skew_secs),
            username_claim: self.username_claim.clone(),
            admin,
            provisioning: self.provisioning,
            ca_file: self.ca_file.clone(),
            refetch_interval: Duration::from_secs(self.refetch_interval_secs),
            keys_max_age: Duration::from_secs(self.keys_max_age_secs),
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(algorithms: &[&str]) -> IssuerSettings {
        let mut s: IssuerSettings =
            serde_json::from_str(r#"{"issuer": "https://id.example", "audience": "api"}"#).unwrap();
        s.algorithms = algorithms.iter().map(|a| (*a).to_owned()).collect();
        s
    }

    #[test]
    fn none_and_hmac_are_refused_whatever_the_configuration_says() {
        for alg in ["none", "HS256", "HS384", "HS512", "hs256"] {
            let err = settings(&["RS256", alg]).check().unwrap_err();
            assert!(err.contains("algorithms"), "{alg}: {err}");
        }
    }

    #[test]
    fn the_defaults_are_rs256_es256_and_eddsa_with_a_minute_of_skew() {
        let s: IssuerSettings =
            serde_json::from_str(r#"{"issuer": "https://id.example", "audience": "api"}"#).unwrap();
        let checked = s.check().unwrap();
        assert_eq!(
            checked.algorithms,
            vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        );
        assert_eq!(checked.skew, Duration::from_secs(60));
        assert_eq!(checked.provisioning, Provisioning::Existing);
    }

    #[test]
    fn a_plain_http_issuer_is_refused() {
        let mut s = settings(&["RS256"]);
        s.issuer = "http://id.example".into();
        assert!(s.check().unwrap_err().contains("https"));
    }
}
