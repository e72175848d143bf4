//! `[console.saml]`: the one SAML identity provider the console trusts. Read at start-up, so a
//! setting that would weaken the checks of a response never reaches a running server.

use natterjack_core::auth::Provisioning;
use serde::Deserialize;
use std::path::PathBuf;

/// The `[console.saml]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlSettings {
    /// The IdP's metadata (an `EntityDescriptor` with an `IDPSSODescriptor`), as the operator
    /// downloaded it: its entity id, signing certificate and HTTP-Redirect single sign-on URL
    /// are trusted as written, so this file is configuration, never fetched at run time.
    pub idp_metadata_file: PathBuf,
    /// This service provider's entity id (the `Audience` the IdP must name). Unset here, the
    /// console fills in `<public_url>/console/saml/metadata`.
    pub entity_id: Option<String>,
    /// The attribute whose (single) value names the user. Unset: the assertion's `NameID`.
    /// The account is linked by this value, so it should be one the IdP never reassigns.
    pub name_attribute: Option<String>,
    /// The attribute listing the user's groups (one value per group). Unset: no groups.
    pub groups_attribute: Option<String>,
    /// The group that makes its members admins (needs `groups_attribute`). Unset: SAML never
    /// makes admins (the local account's role still applies).
    pub admin_group: Option<String>,
    /// Tolerance for the assertion's time bounds, in seconds. Default 60.
    #[serde(default = "default_skew")]
    pub max_skew_secs: u64,
    /// `existing` (default): only identities an operator linked with `natterjack user link`
    /// (source `saml:<IdP entity id>`); `create`: an account is created and linked on first
    /// use, named by the subject.
    #[serde(default)]
    pub provisioning: Provisioning,
}

fn default_skew() -> u64 {
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_a_minute_of_skew_and_linked_accounts_only() {
        let s: SamlSettings = serde_json::from_str(r#"{"idp_metadata_file": "idp.xml"}"#).unwrap();
        assert_eq!(s.max_skew_secs, 60);
        assert_eq!(s.provisioning, Provisioning::Existing);
        assert!(s.entity_id.is_none() && s.name_attribute.is_none());
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let e = serde_json::from_str::<SamlSettings>(
            r#"{"idp_metadata_file": "idp.xml", "verify_signatures": false}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("verify_signatures"), "{e}");
    }
}
