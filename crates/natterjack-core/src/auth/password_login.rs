//! Password logins as an identity provider: the guess budgets, the single-flight
//! verification and the dummy-hash rule of [`Authenticator`], in the one order that keeps
//! them sound.

use super::budgets::LoginBudgets;
use super::identity::{AuthFailure, Credential, IdentityProvider};
use super::{Authenticator, Login, Turn};
use crate::ServiceError;
use crate::domain::Username;
use crate::principal::Principal;
use crate::rate::gcra::Refusal;
use crate::rate::limited_by;
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

    fn limited(refusal: Refusal, from: IpAddr, username: &str) -> AuthFailure {
        let limited_by = limited_by(&refusal, from, Some(username));
        AuthFailure::Limited {
            refusal,
            limited_by,
        }
    }

    fn succeeded(&self, username: &str, from: IpAddr) {
        if let Some(budgets) = &self.budgets {
            budgets.succeeded(username, from);
        }
    }

    /// Verifies a password, counting each guess that needs an Argon2id verification against
    /// the login budgets (`failed-logins`, and `account-guesses` from addresses that have not
    /// logged in as this user recently) before the hashing starts, and giving it back unless
    /// the password turned out wrong. A verification-cache hit takes nothing from the
    /// budgets; a password refused without hashing (empty or oversized) counts as a wrong
    /// guess, as any other. A success makes the address known to the account.
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        from: IpAddr,
    ) -> Result<Principal, AuthFailure> {
        if let Some(budgets) = &self.budgets {
            budgets
                .allowed(username, from)
                .map_err(|r| Self::limited(r, from, username))?;
        }
        let pending = match self.authenticator.begin(username, password).await {
            Ok(Login::Verified(principal)) => {
                self.succeeded(username, from);
                return Ok(principal);
            }
            Ok(Login::NeedsHashing(pending)) => pending,
            Err(ServiceError::Unauthenticated) => {
                // Refused or not, the answer stays "wrong": the guess is counted either way.
                if let Some(budgets) = &self.budgets {
                    let _ = budgets.take(username, from);
                }
                return Err(AuthFailure::Wrong);
            }
            Err(e) => return Err(AuthFailure::Unavailable(e)),
        };
        // Only a verification that will hash counts: one that waited for another of the very
        // same credentials and found it succeeded takes nothing from the budget.
        let pending = match pending.wait_turn().await {
            Turn::Verified(principal) => {
                self.succeeded(username, from);
                return Ok(principal);
            }
            Turn::Hash(pending) => pending,
        };
        let guess = match &self.budgets {
            Some(budgets) => Some(
                budgets
                    .take(username, from)
                    .map_err(|r| Self::limited(r, from, username))?,
            ),
            None => None,
        };
        let give_back = || {
            if let (Some(budgets), Some(guess)) = (&self.budgets, guess) {
                budgets.give_back(username, from, guess);
            }
        };
        match pending.verify().await {
            Ok(principal) => {
                give_back();
                self.succeeded(username, from);
                Ok(principal)
            }
            Err(ServiceError::Unauthenticated) => Err(AuthFailure::Wrong),
            Err(e) => {
                give_back();
                Err(AuthFailure::Unavailable(e))
            }
        }
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
            Credential::Certificate { .. } => None,
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
