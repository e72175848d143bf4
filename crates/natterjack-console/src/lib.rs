//! # natterjack-console
//!
//! The browser console: HTML pages under `/console/` for the people who are not API
//! clients. It is an adapter like REST and gRPC: every request passes the one pipeline of
//! `natterjack_api::pipeline` ([`adapter`]) and calls the one service layer; it only adds
//! what browsers need and the JSON API never did:
//!
//! - browser sessions ([`natterjack_core::session`]) in a `__Host-` cookie ([`cookies`]);
//! - CSRF defence: a per-session token in every form, and an `Origin`/`Sec-Fetch-Site`
//!   check on every POST ([`adapter`]); state changes only by POST;
//! - its own header policy ([`headers`]): a CSP without any script, framing refused;
//! - single sign-on through SAML 2.0 and OpenID Connect, behind the [`SignOn`] port, which
//!   the binary fills from `natterjack-federation`.
//!
//! Pages are askama templates (escaping by default) with no JavaScript at all.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod answer;
pub mod cookies;
pub mod headers;
pub mod operations;
mod pages;
mod routes;
pub mod sign_on;

pub use routes::router;
pub use sign_on::{SignOn, SignOnRefusal};

use natterjack_api::AppState;
use natterjack_core::session::Sessions;
use std::sync::Arc;

/// Whether the audit chain verifies, for the audit page; the binary implements it with the
/// same check as `natterjack audit verify`.
#[async_trait::async_trait]
pub trait ChainStatus: Send + Sync {
    /// A one-line status: `OK (N records)` or what is broken.
    async fn status(&self) -> String;
}

/// Everything the console's pages and adapter share.
#[derive(Clone)]
pub struct Console {
    /// The pipeline's state, shared with REST and gRPC.
    pub app: AppState,
    /// Browser sessions.
    pub sessions: Arc<Sessions>,
    /// The console's own origin (`https://host:port`): the only `Origin` a POST may carry.
    /// `None`: the origin of the `Host` the request was sent to.
    pub origin: Option<String>,
    /// SAML 2.0 sign-on, when configured.
    pub saml: Option<Arc<dyn SignOn>>,
    /// The service provider's metadata, published for the identity provider.
    pub saml_metadata: Option<Arc<str>>,
    /// OpenID Connect sign-on, when configured.
    pub oidc: Option<Arc<dyn SignOn>>,
    /// The audit chain's status for admins.
    pub chain: Arc<dyn ChainStatus>,
}
