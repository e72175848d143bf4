//! Metadata both ways: the IdP's, read once from the operator's file (what is trusted), and
//! this SP's, published for the IdP's operator to register.

use samael::metadata::{
    EntityDescriptor, HTTP_POST_BINDING, HTTP_REDIRECT_BINDING, IndexedEndpoint, SpSsoDescriptor,
};
use samael::traits::ToXml;

/// `NameIDFormat` this SP asks for: whatever the IdP uses (the name attribute can name the
/// user instead).
const NAME_ID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

/// What this SP takes from the IdP's metadata.
#[derive(Debug, Clone)]
pub(crate) struct IdpMetadata {
    /// The whole descriptor, for samael's verification (it reads the signing certificates
    /// and the entity id from it).
    pub(crate) descriptor: EntityDescriptor,
    /// The IdP's entity id: the `Issuer` of its responses and assertions.
    pub(crate) entity_id: String,
    /// Where AuthnRequests go (the HTTP-Redirect `SingleSignOnService`).
    pub(crate) sso_url: String,
}

/// Parses and checks the IdP's metadata; the error is a sentence for the operator.
pub(crate) fn parse_idp(xml: &str) -> Result<IdpMetadata, String> {
    let descriptor: EntityDescriptor = xml
        .parse()
        .map_err(|e| format!("not an EntityDescriptor: {e}"))?;
    let entity_id = descriptor
        .entity_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or("the EntityDescriptor has no entityID")?;
    let idps = descriptor
        .idp_sso_descriptors
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or("no IDPSSODescriptor: this is not an identity provider's metadata")?;
    let sso_url = idps
        .iter()
        .flat_map(|d| &d.single_sign_on_services)
        .find(|s| s.binding == HTTP_REDIRECT_BINDING)
        .map(|s| s.location.clone())
        .ok_or("no SingleSignOnService with the HTTP-Redirect binding")?;
    url::Url::parse(&sso_url).map_err(|e| format!("SingleSignOnService location: {e}"))?;
    // Without a certificate samael would skip signature verification altogether and accept
    // unsigned responses: refuse such metadata here, once, instead.
    let sp = samael::service_provider::ServiceProvider {
        idp_metadata: descriptor.clone(),
        ..Default::default()
    };
    match sp.idp_signing_certs() {
        Ok(Some(certs)) if !certs.is_empty() => {}
        Ok(_) => {
            return Err("no signing certificate (KeyDescriptor with an X509Certificate)".into());
        }
        Err(e) => return Err(format!("signing certificate: {e}")),
    }
    Ok(IdpMetadata {
        descriptor,
        entity_id,
        sso_url,
    })
}

/// This SP's metadata: its entity id and one HTTP-POST assertion consumer service, signed
/// assertions wanted, no signing or encryption key of its own (AuthnRequests go unsigned
/// over the redirect; the response's integrity rests on the IdP's signature).
pub(crate) fn sp_xml(entity_id: &str, acs_url: &str) -> Result<String, String> {
    let descriptor = EntityDescriptor {
        entity_id: Some(entity_id.to_owned()),
        sp_sso_descriptors: Some(vec![SpSsoDescriptor {
            protocol_support_enumeration: Some("urn:oasis:names:tc:SAML:2.0:protocol".into()),
            authn_requests_signed: Some(false),
            want_assertions_signed: Some(true),
            name_id_formats: Some(vec![NAME_ID_UNSPECIFIED.into()]),
            assertion_consumer_services: vec![IndexedEndpoint {
                binding: HTTP_POST_BINDING.into(),
                location: acs_url.to_owned(),
                response_location: None,
                index: 0,
                is_default: Some(true),
            }],
            ..SpSsoDescriptor::default()
        }]),
        ..EntityDescriptor::default()
    };
    descriptor.to_string().map_err(|e| e.to_string())
}
