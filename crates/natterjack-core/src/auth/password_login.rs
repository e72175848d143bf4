//! Password logins and client certificates as identity providers. A password login is
//! [`Authenticator::login`] with this process's guess budgets: the budgets, the
//! single-flight verification and the dummy-hash rule in the one order that keeps them sound.

use super::Authenticator;
use super::budgets::LoginBudgets;
use super::identity::{AuthFailure, Credential, IdentityProvider};
use crate::domain::Username;
use crate::principal::Principal;
use async_trait::async_trait;
use secrecy::SecretString;
use std::net::IpAddr;
use std::sync::Arc;

/// Verifies username/password credentials against the local store.
pub struct PasswordLogins {
    authenticator: Arc<Authenticator>,
    budgets: Option<Arc<LoginBudgets>>,
}

impl PasswordLogins {
    /// Logins through `authenticator`, guesses counted against `budgets` (`None` when rate
    /// limiting is switched off).
    pub fn new(authenticator: Arc<Authenticator>, budgets: Option<Arc<LoginBudgets>>) -> Self {
        Self {
            authenticator,
            budgets,
        }
    }

    /// Verifies a password against this provider's login budgets (see [`Authenticator::login`]).
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        from: IpAddr,
    ) -> Result<Principal, AuthFailure> {
        self.authenticator
            .login(self.budgets.as_deref(), username, password, from)
            .await
    }
}

#[async_trait]
impl IdentityProvider for PasswordLogins {
    async fn identify(
        &self,
        credential: &Credential,
        from: IpAddr,
    ) -> Option<Result<Principal, AuthFailure>> {
        match credential {
            Credential::Password { username, password } => {
                Some(self.login(username, password, from).await)
            }
            Credential::Certificate { .. }
            | Credential::Bearer { .. }
            | Credential::Session { .. } => None,
        }
    }
}

/// Client certificates as an identity provider: the TLS layer has checked the certificate
/// against the client CA; the name it holds must still be an existing user, whose admin
/// role and permissions then apply as for a password login.
pub struct CertificateLogins {
    store: Arc<dyn crate::ports::Store>,
}

impl CertificateLogins {
    /// Certificate logins resolved against `store`.
    pub fn new(store: Arc<dyn crate::ports::Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl IdentityProvider for CertificateLogins {
    async fn identify(
        &self,
        credential: &Credential,
        _from: IpAddr,
    ) -> Option<Result<Principal, AuthFailure>> {
        let Credential::Certificate { name } = credential else {
            return None;
        };
        let Ok(name) = Username::parse(name) else {
            return Some(Err(AuthFailure::Wrong));
        };
        Some(match self.store.find_user(&name).await {
            Ok(Some(user)) => Ok(Principal::new(user.id, user.username, user.admin)),
            Ok(None) => Err(AuthFailure::Wrong),
            Err(e) => Err(AuthFailure::Unavailable(e.into())),
        })
    }
}
