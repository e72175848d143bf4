//! The console as `serve` mounts it: its sessions over the configured store, its origin,
//! and the audit chain check of its audit page.

use crate::audit_files::{FileAnchor, load_or_create_key};
use crate::config::Config;
use crate::runtime::Assembled;
use axum::Router;
use natterjack_console::{ChainStatus, Console, SignOn, SignOnRefusal};
use natterjack_core::audit::{AuditStore, HeadAnchor, VerifyReport, verify};
use natterjack_core::principal::Principal;
use natterjack_federation::oidc::{CodeFlow, LoginRefusal, PendingLogin};
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
pub fn router(cfg: &Config, assembled: &Assembled, bound: SocketAddr) -> Option<Router> {
    if !cfg.console.enabled {
        return None;
    }
    let base = cfg.console.base_url(bound);
    let oidc = assembled.oidc_flow.clone().map(|flow| {
        Arc::new(OidcSignOn {
            flow,
            redirect_uri: format!("{base}/console/oidc/callback"),
        }) as Arc<dyn SignOn>
    });
    Some(natterjack_console::router(Console {
        app: assembled.state.clone(),
        sessions: assembled.sessions.clone(),
        origin: cfg.console.origin(),
        saml: None,
        saml_metadata: None,
        oidc,
        chain: Arc::new(ChainCheck {
            store: assembled.store.audit_store(),
            key_file: cfg.audit_key_path(),
            head_file: cfg.audit_head_path(),
        }),
    }))
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
