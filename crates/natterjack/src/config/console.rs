//! `[console]`: the browser console under `/console/` on the REST listener, how long its
//! sessions last, the origin its forms must come from, and its single sign-on providers.

use natterjack_federation::oidc::ConsoleOidcSettings;
use natterjack_federation::saml::SamlSettings;
use serde::Deserialize;

/// `[console]`. See docs/CONFIGURATION.md, "The console".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether `/console/` is served. Default true.
    pub enabled: bool,
    /// Seconds a session may stay unused before it ends. Default 1800.
    pub session_idle_secs: u64,
    /// Seconds after its login that a session ends however busy it is. Default 43200.
    pub session_absolute_secs: u64,
    /// The console's public origin, `https://host[:port]`: the only `Origin` a form may be
    /// posted from, and the base of the single sign-on callback URLs. Default: any form
    /// must come from the origin of the `Host` it was sent to, and the callbacks are on
    /// `https://<rest listen address as bound>`.
    pub public_url: Option<String>,
    /// Console login through one of the `[[auth.oidc]]` issuers (authorization code flow
    /// with PKCE): `[console.oidc]`, see `natterjack_federation::oidc::ConsoleOidcSettings`.
    pub oidc: Option<ConsoleOidcSettings>,
    /// Console login through a SAML 2.0 identity provider (Web Browser SSO, SP-initiated):
    /// `[console.saml]`, see `natterjack_federation::saml::SamlSettings`.
    pub saml: Option<SamlSettings>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_secs: 30 * 60,
            session_absolute_secs: 12 * 60 * 60,
            public_url: None,
            oidc: None,
            saml: None,
        }
    }
}

impl ConsoleConfig {
    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("console.session_idle_secs", self.session_idle_secs),
            ("console.session_absolute_secs", self.session_absolute_secs),
        ]
    }

    /// The public origin, checked: `https`, a host, no path, query or credentials.
    pub(super) fn check_public_url(&self) -> Result<(), String> {
        let Some(text) = &self.public_url else {
            return Ok(());
        };
        let url = url::Url::parse(text)
            .map_err(|e| format!("console.public_url is not a URL ({e}): {text}"))?;
        if url.scheme() != "https"
            || url.host_str().is_none()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(format!(
                "console.public_url must be an https origin such as https://chat.example.com (no path, query or credentials): {text}"
            ));
        }
        Ok(())
    }

    /// The base of the single sign-on callback URLs: the public origin, or the REST
    /// listener as bound.
    pub fn base_url(&self, bound: std::net::SocketAddr) -> String {
        self.origin().unwrap_or_else(|| format!("https://{bound}"))
    }

    /// The origin as browsers send it in `Origin` (no trailing slash).
    pub fn origin(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned())
    }
}
