//! `[console.oidc]`: the web console as an OpenID Connect client of one of the issuers
//! trusted in `[[auth.oidc]]`, whose keys, claims and account rule it shares. Checked at
//! start-up, naming the setting at fault.

use super::settings::IssuerSettings;
use crate::secret_file::read_secret_file;
use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// The `[console.oidc]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOidcSettings {
    /// The issuer to log in with: one of the `[[auth.oidc]]` issuers, written the same way.
    /// Its ID tokens are checked with its algorithms, skew and keys, and map to accounts by
    /// its username claim, admin rule and provisioning, exactly as its bearer tokens.
    pub issuer: String,
    /// The console's client id at the issuer (the `aud` of its ID tokens).
    pub client_id: String,
    /// A file holding the client secret, for a confidential client. Unset: a public client,
    /// protected by PKCE alone.
    pub client_secret_file: Option<PathBuf>,
}

/// The checked form of [`ConsoleOidcSettings`]: the client secret read from its file.
#[derive(Clone)]
pub struct ConsoleClient {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<SecretString>,
}

impl fmt::Debug for ConsoleClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleClient")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("confidential", &self.client_secret.is_some())
            .finish()
    }
}

impl ConsoleOidcSettings {
    /// Checks the table against the configured issuers (`[[auth.oidc]]`) and reads the
    /// client secret; the error is a sentence for the operator naming the setting.
    pub fn check(&self, issuers: &[IssuerSettings]) -> Result<ConsoleClient, String> {
        self.check_names(issuers.iter().map(|i| i.issuer.as_str()))
    }

    /// [`check`](Self::check) against the issuer URLs `issuers`.
    pub(crate) fn check_names<'a>(
        &self,
        mut issuers: impl Iterator<Item = &'a str>,
    ) -> Result<ConsoleClient, String> {
        let at = |setting: &str, what: &str| format!("console.oidc: {setting}: {what}");
        if !issuers.any(|i| i == self.issuer) {
            return Err(at(
                "issuer",
                &format!(
                    "{:?} is not one of the [[auth.oidc]] issuers (write it exactly as there)",
                    self.issuer
                ),
            ));
        }
        if self.client_id.is_empty() {
            return Err(at("client_id", "must not be empty"));
        }
        if self.client_id.chars().any(char::is_control) {
            return Err(at("client_id", "must not hold control characters"));
        }
        let client_secret = match &self.client_secret_file {
            Some(path) => Some(
                read_secret_file(path, "console OpenID Connect client secret")
                    .map_err(|e| at("client_secret_file", &e))?,
            ),
            None => None,
        };
        Ok(ConsoleClient {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn issuers() -> Vec<IssuerSettings> {
        vec![
            serde_json::from_str(r#"{"issuer": "https://id.example", "audience": "api"}"#).unwrap(),
        ]
    }

    fn settings(json: &str) -> Result<ConsoleOidcSettings, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_public_client_of_a_configured_issuer_is_accepted() {
        let s =
            settings(r#"{"issuer": "https://id.example", "client_id": "natterjack-web"}"#).unwrap();
        let client = s.check(&issuers()).unwrap();
        assert_eq!(client.client_id, "natterjack-web");
        assert!(client.client_secret.is_none());
    }

    #[test]
    fn an_issuer_not_in_auth_oidc_is_refused_naming_the_setting() {
        let s = settings(r#"{"issuer": "https://id.example/", "client_id": "web"}"#).unwrap();
        let refused = s.check(&issuers()).unwrap_err();
        assert!(refused.starts_with("console.oidc: issuer:"), "{refused}");
    }

    #[test]
    fn an_empty_client_id_is_refused() {
        let s = settings(r#"{"issuer": "https://id.example", "client_id": ""}"#).unwrap();
        assert!(s.check(&issuers()).unwrap_err().contains("client_id"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(
            settings(r#"{"issuer": "https://id.example", "client_id": "w", "secret": "x"}"#)
                .is_err()
        );
    }

    #[test]
    fn the_client_secret_is_read_from_its_file_and_never_shown() {
        let dir = std::env::temp_dir().join(format!(
            "natterjack-console-oidc-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        let s = ConsoleOidcSettings {
            issuer: "https://id.example".into(),
            client_id: "web".into(),
            client_secret_file: Some(path.clone()),
        };
        let client = s.check(&issuers()).unwrap();
        assert_eq!(
            client.client_secret.as_ref().unwrap().expose_secret(),
            "s3cret-value"
        );
        assert!(!format!("{client:?}").contains("s3cret"));
        std::fs::write(&path, "").unwrap();
        let refused = s.check(&issuers()).unwrap_err();
        assert!(
            refused.starts_with("console.oidc: client_secret_file:"),
            "{refused}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
