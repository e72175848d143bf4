//! The capability that every space operation requires.

use crate::ServiceError;
use crate::domain::{Permissions, SpaceId};
use crate::principal::Principal;

/// Proof that `principal` holds `held` on `space`, read from the ACL during this request.
///
/// Only [`crate::service::Service::authorize`] creates one, so a space operation cannot be
/// reached without the access check having run; each operation still re-checks the
/// permission it needs against `held`, so a route that declared too little fails closed.
#[derive(Debug, Clone)]
pub struct SpaceAccess {
    principal: Principal,
    space: SpaceId,
    held: Permissions,
}

impl SpaceAccess {
    pub(crate) fn new(principal: Principal, space: SpaceId, held: Permissions) -> Self {
        Self {
            principal,
            space,
            held,
        }
    }

    /// The caller.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The space the check was made for; every query is scoped by it.
    pub fn space(&self) -> SpaceId {
        self.space
    }

    /// What the caller holds on the space.
    pub fn held(&self) -> Permissions {
        self.held
    }

    /// Fails with `Forbidden` unless the caller holds `needed`.
    pub(crate) fn require(&self, needed: Permissions) -> Result<(), ServiceError> {
        if self.held.contains(needed) && !self.held.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden("missing permission on this space"))
        }
    }
}
