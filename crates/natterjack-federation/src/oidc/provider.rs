//! Bearer tokens as an identity provider: the issuer a token names picks the verifier, a
//! valid token's issuer and `sub` pick the local account, and refused tokens count against
//! the address's failed-login budget.

use super::client_settings::ConsoleOidcSettings;
use super::code_flow::CodeFlow;
use super::keys::Keys;
use super::settings::IssuerSettings;
use super::token::peek;
use super::verify::{IssuerVerifier, TokenError};
use crate::tls;
use async_trait::async_trait;
use natterjack_core::ServiceError;
use natterjack_core::auth::{
    AuthFailure, Credential, IdentityProvider, LinkedAccounts, LoginBudgets,
};
use natterjack_core::clock::SharedClock;
use natterjack_core::principal::Principal;
use natterjack_core::rate::limited_by;
use secrecy::ExposeSecret;
use std::net::IpAddr;
use std::sync::Arc;

/// The trusted issuers of this process.
pub struct BearerLogins {
    issuers: Vec<Arc<IssuerVerifier>>,
    accounts: LinkedAccounts,
    budgets: Option<Arc<LoginBudgets>>,
}

impl BearerLogins {
    /// Checks the settings and fetches each issuer's discovery document and keys. An issuer
    /// that cannot be reached now is logged and left in a degraded state: its tokens are
    /// answered 503 until its keys can be fetched (a later token tries again), and the
    /// server starts anyway, so an issuer's outage never keeps the rest of the API down.
    /// Invalid settings are an error.
    pub async fn start(
        settings: &[IssuerSettings],
        accounts: LinkedAccounts,
        budgets: Option<Arc<LoginBudgets>>,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let mut issuers = Vec::new();
        for s in settings {
            let issuer = s.check()?;
            if issuers
                .iter()
                .any(|v: &Arc<IssuerVerifier>| v.issuer.issuer == issuer.issuer)
            {
                return Err(format!(
                    "auth.oidc: issuer {:?} is listed twice",
                    issuer.issuer
                ));
            }
            let tls = tls::client_config(issuer.ca_file.as_deref())
                .map_err(|e| format!("auth.oidc (issuer {:?}): ca_file: {e}", issuer.issuer))?;
            let http = reqwest::Client::builder()
                .use_preconfigured_tls((*tls).clone())
                .https_only(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(issuer.timeout)
                .build()
                .map_err(|e| format!("auth.oidc (issuer {:?}): {e}", issuer.issuer))?;
            let keys = Keys::new(issuer.clone(), http, clock.clone());
            match keys.load().await {
                Ok(count) => {
                    tracing::info!(issuer = %issuer.issuer, keys = count, "OpenID Connect issuer ready")
                }
                Err(e) => tracing::error!(
                    issuer = %issuer.issuer,
                    error = %e,
                    "OpenID Connect issuer unreachable at start: its tokens get 503 until its keys can be fetched"
                ),
            }
            issuers.push(Arc::new(IssuerVerifier::new(issuer, keys, clock.clone())));
        }
        Ok(Self {
            issuers,
            accounts,
            budgets,
        })
    }

    /// The console's login through the issuer `settings` names, sharing that issuer's
    /// discovery document, keys, claim rules and account links with its bearer tokens.
    /// The error is a sentence for the operator naming the setting at fault.
    pub fn code_flow(&self, settings: &ConsoleOidcSettings) -> Result<CodeFlow, String> {
        let client = settings.check_names(self.issuers.iter().map(|v| v.issuer.issuer.as_str()))?;
        let verifier = self
            .issuers
            .iter()
            .find(|v| v.issuer.issuer == client.issuer)
            .cloned()
            .ok_or_else(|| format!("console.oidc: issuer {:?} is not configured", client.issuer))?;
        Ok(CodeFlow::new(verifier, self.accounts.clone(), client))
    }

    /// How many times the key set of `issuer` was fetched (operators' metrics and tests).
    pub fn key_fetches(&self, issuer: &str) -> Option<u64> {
        self.issuers
            .iter()
            .find(|v| v.issuer.issuer == issuer)
            .map(|v| v.keys.fetches())
    }

    async fn principal(&self, token: &str) -> Result<Principal, AuthFailure> {
        let peeked = peek(token).map_err(AuthFailure::Refused)?;
        let verifier = peeked
            .iss
            .as_deref()
            .and_then(|iss| self.issuers.iter().find(|v| v.issuer.issuer == iss))
            .ok_or(AuthFailure::Refused("unknown issuer"))?;
        let verified = match verifier.verify(token, &peeked).await {
            Ok(verified) => verified,
            Err(TokenError::Invalid(reason)) => return Err(AuthFailure::Refused(reason)),
            Err(TokenError::Unavailable(e)) => {
                tracing::warn!(issuer = %verifier.issuer.issuer, error = %e, "token not checked: issuer keys unavailable");
                return Err(AuthFailure::Unavailable(ServiceError::ProviderUnavailable(
                    "OpenID Connect issuer",
                )));
            }
        };
        verifier.principal(&self.accounts, &verified).await
    }
}

#[async_trait]
impl IdentityProvider for BearerLogins {
    async fn identify(
        &self,
        credential: &Credential,
        from: IpAddr,
    ) -> Option<Result<Principal, AuthFailure>> {
        let Credential::Bearer { token } = credential else {
            return None;
        };
        if let Some(budgets) = &self.budgets
            && let Err(refusal) = budgets.token_allowed(from).await
        {
            let limited_by = limited_by(&refusal, from, None);
            return Some(Err(AuthFailure::Limited {
                refusal,
                limited_by,
            }));
        }
        let answer = self.principal(token.expose_secret()).await;
        if let (Err(AuthFailure::Refused(_)), Some(budgets)) = (&answer, &self.budgets) {
            budgets.token_refused(from).await;
        }
        Some(answer)
    }
}
