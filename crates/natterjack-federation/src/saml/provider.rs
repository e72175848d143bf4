//! This console as a SAML service provider of one IdP: metadata out, AuthnRequests out,
//! responses in.
//!
//! A response is taken in four steps, any of which refuses it:
//!
//! 1. [`shape`](super::shape): the raw document's shape (size, no DTD, no comments or CDATA,
//!    exactly one assertion, a `Response` root).
//! 2. [`checks::envelope`]: `InResponseTo` is the pending request, `Destination` is the ACS,
//!    the status is success, a signature is present.
//! 3. samael: xmlsec verifies every signature in the document with the IdP metadata's
//!    certificate (RSA or ECDSA with SHA-256 or stronger only), then reduces the document to
//!    what the signatures cover (unsigned ancestors and siblings are dropped) and reads the
//!    assertion from that reduced document only; it checks the issuer, `InResponseTo`,
//!    `Destination` of a signed response, the time bounds and the bearer confirmation's
//!    `Recipient` against the wall clock.
//! 4. [`checks::assertion`]: the same bounds again against the caller's `now`, plus what
//!    samael leaves optional (see there), then the identity is read.
//!
//! One-time use is the caller's: [`super::SeenAssertions`], or [`super::SamlLogins`], which
//! does it all.

use super::checks::{self, Expected};
use super::identity::{self, AttributeMap, SamlIdentity};
use super::metadata::{self, IdpMetadata};
use super::refusal::SamlRefusal;
use super::request::{self, RequestError, SamlRedirect};
use super::settings::SamlSettings;
use super::shape;
use base64::Engine;
use natterjack_core::auth::Provisioning;
use natterjack_core::domain::Timestamp;
use samael::crypto::AllowedSignatureAlgorithm;
use samael::service_provider::Error as SamaelError;

/// Largest `SAMLResponse` taken (base64, before decoding). Genuine responses are a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How long after its `IssueInstant` a response is still taken: the pending-login binding
/// lives five minutes, so a response older than that has nothing left to answer.
const MAX_AGE_SECS: i64 = 300;

/// Signature algorithms accepted: SHA-1 and DSA never are.
const ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// The SP of the console and the one IdP it trusts.
#[derive(Clone)]
pub struct ServiceProvider {
    samael: samael::service_provider::ServiceProvider,
    idp: IdpMetadata,
    acs_url: String,
    entity_id: String,
    /// This SP's metadata, rendered once at load.
    sp_metadata: String,
    attributes: AttributeMap,
    provisioning: Provisioning,
    /// Allowed clock difference, in microseconds.
    skew: i64,
}

impl std::fmt::Debug for ServiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("entity_id", &self.entity_id)
            .field("acs_url", &self.acs_url)
            .field("idp", &self.idp.entity_id)
            .field("sso_url", &self.idp.sso_url)
            .finish_non_exhaustive()
    }
}

impl ServiceProvider {
    /// Reads the IdP's metadata file and checks the settings. `acs_url` is where the IdP
    /// posts responses (`https://…/console/saml/acs`); `entity_id` is this SP's (the
    /// settings' or the console's default). The error is a sentence for the operator naming
    /// the setting.
    pub fn load(settings: &SamlSettings, acs_url: &str, entity_id: &str) -> Result<Self, String> {
        let at = |what: &str| format!("console.saml: {what}");
        let acs = url::Url::parse(acs_url).map_err(|e| at(&format!("ACS URL: {e}")))?;
        if acs.scheme() != "https" {
            return Err(at(
                "the ACS URL must be https:// (the console serves only TLS)",
            ));
        }
        if entity_id.is_empty() {
            return Err(at("entity_id must not be empty"));
        }
        if settings.admin_group.is_some() && settings.groups_attribute.is_none() {
            return Err(at("admin_group needs groups_attribute"));
        }
        let skew = i64::try_from(settings.max_skew_secs)
            .ok()
            .filter(|s| *s <= 3600)
            .ok_or_else(|| at("max_skew_secs must be at most 3600"))?;
        let path = &settings.idp_metadata_file;
        let xml = std::fs::read_to_string(path)
            .map_err(|e| at(&format!("idp_metadata_file {}: {e}", path.display())))?;
        let idp = metadata::parse_idp(&xml)
            .map_err(|e| at(&format!("idp_metadata_file {}: {e}", path.display())))?;
        let samael = samael::service_provider::ServiceProvider {
            entity_id: Some(entity_id.to_owned()),
            acs_url: Some(acs_url.to_owned()),
            metadata_url: None,
            slo_url: None,
            idp_metadata: idp.descriptor.clone(),
            allow_idp_initiated: false,
            max_issue_delay: chrono::Duration::seconds(MAX_AGE_SECS),
            max_clock_skew: chrono::Duration::seconds(skew),
            allowed_signature_algorithms: Some(ALGORITHMS.to_vec()),
            ..Default::default()
        };
        let sp_metadata = metadata::sp_xml(entity_id, acs_url)
            .map_err(|e| at(&format!("this SP's metadata: {e}")))?;
        Ok(Self {
            samael,
            idp,
            acs_url: acs_url.to_owned(),
            entity_id: entity_id.to_owned(),
            sp_metadata,
            attributes: AttributeMap {
                name: settings.name_attribute.clone(),
                groups: settings.groups_attribute.clone(),
                admin_group: settings.admin_group.clone(),
            },
            provisioning: settings.provisioning,
            skew: skew * 1_000_000,
        })
    }

    /// This SP's metadata (XML), served at `/console/saml/metadata` for the IdP's operator.
    pub fn metadata(&self) -> &str {
        &self.sp_metadata
    }

    /// This SP's entity id.
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// The IdP's entity id, as its metadata names it.
    pub fn idp_entity_id(&self) -> &str {
        &self.idp.entity_id
    }

    /// Whether accounts are created on first sign-on.
    pub fn provisioning(&self) -> Provisioning {
        self.provisioning
    }

    /// Starts an SP-initiated sign-on: an AuthnRequest to the IdP's HTTP-Redirect single
    /// sign-on URL, issued at `now`, carrying `relay_state` (at most 80 bytes; the IdP sends
    /// it back with the response).
    pub fn begin(&self, relay_state: &str, now: Timestamp) -> Result<SamlRedirect, RequestError> {
        request::redirect(
            &self.idp.sso_url,
            &self.entity_id,
            &self.acs_url,
            relay_state,
            now,
        )
    }

    /// Takes the `SAMLResponse` of an HTTP-POST to the ACS: verified and checked as the
    /// module documentation says, answering `expected_request_id` (the request pending for
    /// this browser), at `now`. Does not remember the assertion: pass
    /// [`SamlIdentity::assertion_id`] to [`super::SeenAssertions::first_use`].
    pub fn finish(
        &self,
        saml_response: &str,
        expected_request_id: &str,
        now: Timestamp,
    ) -> Result<SamlIdentity, SamlRefusal> {
        if saml_response.len() > MAX_RESPONSE_BYTES {
            return Err(SamlRefusal::TooLarge);
        }
        let compact: Vec<u8> = saml_response
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| SamlRefusal::Malformed)?;
        let xml = String::from_utf8(bytes).map_err(|_| SamlRefusal::Malformed)?;
        let expected = Expected {
            acs_url: &self.acs_url,
            entity_id: &self.entity_id,
            idp: &self.idp.entity_id,
            request_id: expected_request_id,
            now,
            skew: self.skew,
            max_age: MAX_AGE_SECS * 1_000_000,
        };
        let shape = shape::inspect(&xml)?;
        checks::envelope(&shape, &expected)?;
        let assertion = self
            .samael
            .parse_xml_response(&xml, Some(&[expected_request_id]))
            .map_err(refusal)?;
        let valid_until = checks::assertion(&assertion, &shape, &expected)?;
        identity::read(
            &assertion,
            &self.attributes,
            &self.idp.entity_id,
            valid_until,
        )
    }
}

/// samael's error as a refusal (its messages quote the response, so they are not kept).
fn refusal(error: SamaelError) -> SamlRefusal {
    match error {
        SamaelError::FailedToValidateSignature | SamaelError::CryptoXmlError(_) => {
            SamlRefusal::Signature
        }
        SamaelError::DestinationValidationError { .. } => SamlRefusal::Destination,
        SamaelError::AssertionRecipientMismatch { .. } => SamlRefusal::Recipient,
        SamaelError::AssertionConditionAudienceRestrictionFailed { .. } => SamlRefusal::Audience,
        SamaelError::AssertionExpired { .. }
        | SamaelError::ResponseExpired { .. }
        | SamaelError::AssertionConditionExpired { .. }
        | SamaelError::AssertionSubjectConfirmationExpired { .. } => SamlRefusal::Expired,
        SamaelError::AssertionConditionExpiredBefore { .. }
        | SamaelError::AssertionSubjectConfirmationExpiredBefore { .. } => SamlRefusal::NotYetValid,
        SamaelError::AssertionIssuerMismatch { .. }
        | SamaelError::ResponseIssuerMismatch { .. } => SamlRefusal::Issuer,
        SamaelError::AssertionInResponseToInvalid { .. }
        | SamaelError::ResponseInResponseToInvalid { .. } => SamlRefusal::InResponseTo,
        SamaelError::ResponseBadStatusCode { .. } => SamlRefusal::Status,
        SamaelError::AssertionBearerSubjectConfirmationMissing
        | SamaelError::AssertionSubjectConfirmationMissing => SamlRefusal::SubjectConfirmation,
        SamaelError::EncryptedAssertionsNotYetSupported
        | SamaelError::EncryptedAssertionInvalid
        | SamaelError::FailedToDecryptAssertion
        | SamaelError::MissingPrivateKeySP => SamlRefusal::Encrypted,
        _ => SamlRefusal::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_and_the_logins_can_be_shared_between_tasks() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<ServiceProvider>();
        shared::<super::super::SamlLogins>();
        shared::<super::super::SeenAssertions>();
    }

    #[test]
    fn an_acs_url_without_tls_or_a_missing_metadata_file_is_refused_at_load() {
        let settings: SamlSettings =
            serde_json::from_str(r#"{"idp_metadata_file": "/nonexistent"}"#).unwrap();
        let e = ServiceProvider::load(&settings, "http://sp/acs", "sp").unwrap_err();
        assert!(e.contains("https"), "{e}");
        let e = ServiceProvider::load(&settings, "https://sp/acs", "sp").unwrap_err();
        assert!(e.contains("idp_metadata_file"), "{e}");
    }

    #[test]
    fn an_admin_group_without_groups_or_an_hour_of_skew_is_refused_at_load() {
        let load = |json: &str| {
            let settings: SamlSettings = serde_json::from_str(json).unwrap();
            ServiceProvider::load(&settings, "https://sp/acs", "sp").unwrap_err()
        };
        let e = load(r#"{"idp_metadata_file": "x", "admin_group": "admins"}"#);
        assert!(e.contains("groups_attribute"), "{e}");
        let e = load(r#"{"idp_metadata_file": "x", "max_skew_secs": 3601}"#);
        assert!(e.contains("max_skew_secs"), "{e}");
    }
}
