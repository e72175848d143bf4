//! The console as `serve` mounts it: its sessions over the configured store, its origin,
//! and the audit chain check of its audit page.

use crate::audit_files::{FileAnchor, load_or_create_key};
use crate::config::Config;
use crate::storage::Storage;
use axum::Router;
use natterjack_api::AppState;
use natterjack_console::{ChainStatus, Console};
use natterjack_core::audit::{AuditStore, HeadAnchor, VerifyReport, verify};
use natterjack_core::session::Sessions;
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
    state: &AppState,
    sessions: &Arc<Sessions>,
    store: &Storage,
    _bound: SocketAddr,
) -> Option<Router> {
    if !cfg.console.enabled {
        return None;
    }
    Some(natterjack_console::router(Console {
        app: state.clone(),
        sessions: sessions.clone(),
        origin: cfg.console.origin(),
        saml: None,
        saml_metadata: None,
        oidc: None,
        chain: Arc::new(ChainCheck {
            store: store.audit_store(),
            key_file: cfg.audit_key_path(),
            head_file: cfg.audit_head_path(),
        }),
    }))
}
