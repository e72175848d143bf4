//! SAML sign-ons as principals, the way bearer tokens become principals: the IdP's entity id
//! and the subject pick the local account ([`LinkedAccounts`]), never a name the IdP sends
//! alone.

use super::identity::SamlIdentity;
use super::provider::ServiceProvider;
use super::refusal::SamlRefusal;
use super::seen::SeenAssertions;
use natterjack_core::auth::{AuthFailure, ExternalIdentity, LinkedAccounts};
use natterjack_core::domain::Timestamp;
use natterjack_core::principal::Principal;

/// The link source of an IdP: `saml:<entity id>` (what `natterjack user link` is given), so
/// a SAML IdP and an OpenID issuer with the same URL never share links.
pub fn link_source(idp_entity_id: &str) -> String {
    format!("saml:{idp_entity_id}")
}

/// The identity as the account links see it, under `source` ([`link_source`]).
pub fn external_identity<'a>(identity: &'a SamlIdentity, source: &'a str) -> ExternalIdentity<'a> {
    ExternalIdentity {
        source,
        subject: &identity.subject,
        name: Some(&identity.subject),
        admin: identity.admin,
    }
}

/// The console's SAML sign-ons: verification, one-time use, then the linked account.
pub struct SamlLogins {
    provider: ServiceProvider,
    seen: SeenAssertions,
    accounts: LinkedAccounts,
    source: String,
}

impl SamlLogins {
    /// Sign-ons through `provider`, accounts from `accounts`.
    pub fn new(provider: ServiceProvider, accounts: LinkedAccounts) -> Self {
        let source = link_source(provider.idp_entity_id());
        Self {
            provider,
            seen: SeenAssertions::default(),
            accounts,
            source,
        }
    }

    /// The SP, for its metadata and [`ServiceProvider::begin`].
    pub fn provider(&self) -> &ServiceProvider {
        &self.provider
    }

    /// The principal a posted `SAMLResponse` signs in, answering `expected_request_id` at
    /// `now`, with the verified identity (for the audit record). A refused response is
    /// [`AuthFailure::Refused`] with the [`SamlRefusal`]'s reason; a replayed assertion too.
    /// The XML signature check runs on the caller's thread (a millisecond or so).
    pub async fn login(
        &self,
        saml_response: &str,
        expected_request_id: &str,
        now: Timestamp,
    ) -> Result<(Principal, SamlIdentity), AuthFailure> {
        let identity = self
            .provider
            .finish(saml_response, expected_request_id, now)
            .map_err(|r| AuthFailure::Refused(r.reason()))?;
        if !self
            .seen
            .first_use(&identity.assertion_id, identity.valid_until, now)
        {
            return Err(AuthFailure::Refused(SamlRefusal::Replayed.reason()));
        }
        let principal = self
            .accounts
            .principal(
                external_identity(&identity, &self.source),
                self.provider.provisioning(),
            )
            .await?;
        Ok((principal, identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_is_keyed_by_the_idp_and_the_subject_and_carries_admin() {
        let identity = SamlIdentity {
            idp: "https://idp.example/metadata".into(),
            subject: "bob".into(),
            name_id: "bob".into(),
            groups: vec!["natterjack-admins".into()],
            admin: true,
            assertion_id: "a1".into(),
            valid_until: Timestamp::from_micros(0),
        };
        let source = link_source(&identity.idp);
        assert_eq!(source, "saml:https://idp.example/metadata");
        let external = external_identity(&identity, &source);
        assert_eq!(external.source, source);
        assert_eq!(external.subject, "bob");
        assert_eq!(external.name, Some("bob"));
        assert!(external.admin);
    }
}
