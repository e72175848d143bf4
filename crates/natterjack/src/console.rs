//! The console as `serve` mounts it: its sessions over the configured store, its origin,
//! and the audit chain check of its audit page.

use crate::audit_files::{FileAnchor, load_or_create_key};
use crate::config::{Config, ConfigError};
use crate::runtime::Assembled;
use crate::start_error::StartError;
use axum::Router;
use natterjack_console::{ChainStatus, Console, SignOn, SignOnRefusal};
use natterjack_core::audit::{AuditStore, HeadAnchor, VerifyReport, verify};
use natterjack_core::auth::AuthFailure;
use natterjack_core::clock::SharedClock;
use natterjack_core::principal::Principal;
use natterjack_federation::oidc::{CodeFlow, LoginRefusal, PendingLogin};
use natterjack_federation::saml::{SamlLogins, ServiceProvider};
use secrecy::{ExposeSecret, SecretString};
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The audit page's chain status: the check `natterjack audit verify` makes, against the
/// same key and anchored head.
struct ChainCheck {
    store: Arc<dyn AuditStore>,
    key_file: PathBuf,
    head_file: PathBuf,
}

#[async_trait::async_trait]
impl ChainStatus for ChainCheck {
    async fn status(&self) -> String {
        let key = match load_or_create_key(&self.key_file, false) {
            Ok(key) => key,
            Err(e) => return format!("cannot check: {e}"),
        };
        let anchored = match FileAnchor::new(self.head_file.clone()).load() {
            Ok(anchored) => anchored,
            Err(e) => return format!("cannot read the anchored head: {e}"),
        };
        match verify(&key, self.store.as_ref(), anchored).await {
            Ok(VerifyReport::Intact { records }) => format!("OK ({records} records)"),
            Ok(VerifyReport::Broken {
                first_bad_id,
                reason,
            }) => format!("BROKEN at record {first_bad_id}: {reason}"),
            Err(e) => format!("cannot check: {e}"),
        }
    }
}

/// The console's router for a REST listener bound at `bound`, or `None` when
/// `console.enabled` is off.
pub fn router(
    cfg: &Config,
    assembled: &Assembled,
    bound: SocketAddr,
) -> Result<Option<Router>, StartError> {
    if !cfg.console.enabled {
        return Ok(None);
    }
    let base = cfg.console.base_url(bound);
    let oidc = assembled.oidc_flow.clone().map(|flow| {
        Arc::new(OidcSignOn {
            flow,
            redirect_uri: format!("{base}/console/oidc/callback"),
        }) as Arc<dyn SignOn>
    });
    let saml = match &cfg.console.saml {
        Some(settings) => {
            let entity_id = settings
                .entity_id
                .clone()
                .unwrap_or_else(|| format!("{base}/console/saml/metadata"));
            let provider =
                ServiceProvider::load(settings, &format!("{base}/console/saml/acs"), &entity_id)
                    .map_err(|e| StartError::Config(ConfigError(format!("console.saml: {e}"))))?;
            Some(Arc::new(SamlSignOn {
                logins: SamlLogins::new(provider, assembled.linked.clone()),
                clock: assembled.state.clock.clone(),
            }))
        }
        None => None,
    };
    let saml_metadata = saml
        .as_ref()
        .map(|s| Arc::from(s.logins.provider().metadata()));
    Ok(Some(natterjack_console::router(Console {
        app: assembled.state.clone(),
        sessions: assembled.sessions.clone(),
        origin: cfg.console.origin(),
        saml: saml.map(|s| s as Arc<dyn SignOn>),
        saml_metadata,
        oidc,
        chain: Arc::new(ChainCheck {
            store: assembled.store.audit_store(),
            key_file: cfg.audit_key_path(),
            head_file: cfg.audit_head_path(),
        }),
    })))
}

/// The console's OpenID Connect login: the code flow of one configured issuer.
struct OidcSignOn {
    flow: Arc<CodeFlow>,
    redirect_uri: String,
}

fn refusal(e: LoginRefusal) -> SignOnRefusal {
    if e.is_unavailable() {
        SignOnRefusal::Unavailable(e.reason())
    } else {
        SignOnRefusal::Refused(e.reason())
    }
}

#[async_trait::async_trait]
impl SignOn for OidcSignOn {
    fn kind(&self) -> &'static str {
        "oidc"
    }

    async fn begin(&self) -> Result<(String, SecretString), SignOnRefusal> {
        let (url, pending) = self.flow.begin(&self.redirect_uri).await.map_err(refusal)?;
        Ok((url.to_string(), pending.to_stored()))
    }

    async fn finish(
        &self,
        fields: &[(String, String)],
        kept: SecretString,
        _from: IpAddr,
    ) -> Result<Principal, SignOnRefusal> {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if field("error").is_some() {
            return Err(SignOnRefusal::Refused(
                "the provider answered with an error",
            ));
        }
        let (Some(code), Some(state)) = (field("code"), field("state")) else {
            return Err(SignOnRefusal::Refused(
                "the callback carries no code or state",
            ));
        };
        let pending = PendingLogin::from_stored(kept.expose_secret()).map_err(refusal)?;
        self.flow
            .finish(pending, state, code, &self.redirect_uri)
            .await
            .map_err(refusal)
    }
}

/// The console's SAML 2.0 sign-on: SP-initiated Web Browser SSO, the pending request id
/// kept for the browser, the response checked by [`SamlLogins`] (signature through
/// libxmlsec1, envelope, audience, times, request, one-time use, account link).
struct SamlSignOn {
    logins: SamlLogins,
    clock: SharedClock,
}

#[async_trait::async_trait]
impl SignOn for SamlSignOn {
    fn kind(&self) -> &'static str {
        "saml"
    }

    async fn begin(&self) -> Result<(String, SecretString), SignOnRefusal> {
        let redirect = self
            .logins
            .provider()
            .begin("", self.clock.wall())
            .map_err(|_| SignOnRefusal::Unavailable("cannot write the authentication request"))?;
        Ok((redirect.url, SecretString::from(redirect.request_id)))
    }

    async fn finish(
        &self,
        fields: &[(String, String)],
        kept: SecretString,
        _from: IpAddr,
    ) -> Result<Principal, SignOnRefusal> {
        let response = fields
            .iter()
            .find(|(k, _)| k == "SAMLResponse")
            .map(|(_, v)| v.as_str())
            .ok_or(SignOnRefusal::Refused("no SAMLResponse in the form"))?;
        match self
            .logins
            .login(response, kept.expose_secret(), self.clock.wall())
            .await
        {
            Ok((principal, _)) => Ok(principal),
            Err(AuthFailure::Refused(reason)) => Err(SignOnRefusal::Refused(reason)),
            Err(AuthFailure::Wrong | AuthFailure::Limited { .. }) => {
                Err(SignOnRefusal::Refused("the identity maps to no account"))
            }
            Err(AuthFailure::Unavailable(_)) => {
                Err(SignOnRefusal::Unavailable("the account store"))
            }
        }
    }
}
