//! External identities mapped to local accounts. Grants, ownership and the audit trail name
//! local users, so every identity from outside (an issuer's `sub`, a directory entry) is
//! linked to exactly one local account. A link is keyed by source and subject, never by a
//! name the outside chooses: an issuer that says `preferred_username: alice` does not
//! become the local `alice` unless an operator linked the two.

use super::identity::AuthFailure;
use crate::ServiceError;
use crate::domain::Username;
use crate::ports::{Store, StoreError, UserRecord};
use crate::principal::Principal;
use std::sync::Arc;

/// What happens when a verified identity has no link yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provisioning {
    /// Only identities an operator linked (`natterjack user link`) are let in.
    #[default]
    Existing,
    /// A new local account, named by the identity's username claim, is created and linked
    /// on first use; refused when that name is taken (linking is the operator's call).
    Create,
}

/// An identity a provider has verified.
#[derive(Debug, Clone, Copy)]
pub struct ExternalIdentity<'a> {
    /// Where it was verified: an issuer URL, a directory URL.
    pub source: &'a str,
    /// Who, as the source names them for good: `sub`, a directory username.
    pub subject: &'a str,
    /// The name a new account would get, if the source offers one.
    pub name: Option<&'a str>,
    /// Whether the source makes this identity an admin (an issuer's claim, a directory
    /// group). Adds to, never removes, the local account's own admin role.
    pub admin: bool,
}

/// Resolves verified external identities to principals.
#[derive(Clone)]
pub struct LinkedAccounts {
    store: Arc<dyn Store>,
}

impl LinkedAccounts {
    /// Links kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The local account linked to `identity`, created first under [`Provisioning::Create`].
    pub async fn account(
        &self,
        identity: ExternalIdentity<'_>,
        provisioning: Provisioning,
    ) -> Result<UserRecord, AuthFailure> {
        let unavailable = |e: StoreError| AuthFailure::Unavailable(ServiceError::from(e));
        if let Some(user) = self
            .store
            .find_linked_user(identity.source, identity.subject)
            .await
            .map_err(unavailable)?
        {
            return Ok(user);
        }
        if provisioning == Provisioning::Existing {
            return Err(AuthFailure::Refused("identity not linked to an account"));
        }
        let name = identity
            .name
            .and_then(|n| Username::parse(n).ok())
            .ok_or(AuthFailure::Refused("no usable username claim"))?;
        match self
            .store
            .create_linked_user(&name, identity.source, identity.subject)
            .await
        {
            Ok(user) => {
                tracing::info!(user = %user.username, source = identity.source, "account created for a new external identity");
                Ok(user)
            }
            // Another request linked the same identity meanwhile, or the name is taken.
            Err(StoreError::Conflict) => self
                .store
                .find_linked_user(identity.source, identity.subject)
                .await
                .map_err(unavailable)?
                .ok_or(AuthFailure::Refused("username taken by another account")),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The principal for `identity` (see [`LinkedAccounts::account`]).
    pub async fn principal(
        &self,
        identity: ExternalIdentity<'_>,
        provisioning: Provisioning,
    ) -> Result<Principal, AuthFailure> {
        let user = self.account(identity, provisioning).await?;
        Ok(Principal::new(
            user.id,
            user.username,
            user.admin || identity.admin,
        ))
    }
}
