//! The service provider under test, set up against the shared IdP, and the ways a test takes
//! a genuine signed response apart (decode, edit the XML, encode).

use super::saml_idp::{IdpResponse, SamlIdp};
use base64::Engine;
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_core::domain::Timestamp;
use natterjack_federation::saml::{SamlSettings, ServiceProvider};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The SP's ACS URL (nothing listens there: the tests post by calling `finish`).
pub const ACS_URL: &str = "https://127.0.0.1:8443/console/saml/acs";
/// The SP's entity id.
pub const ENTITY_ID: &str = "https://127.0.0.1:8443/console/saml/metadata";
/// The IdP's group that makes admins.
pub const ADMIN_GROUP: &str = "natterjack-admins";

/// The shared IdP and an SP that trusts it, or `None` (after SKIPPED) when it cannot run.
pub fn setup(test: &str) -> Option<(&'static SamlIdp, ServiceProvider)> {
    let idp = SamlIdp::shared(test)?;
    Some((
        idp,
        provider(idp, ACS_URL, ENTITY_ID, serde_json::json!({})),
    ))
}

/// The IdP's metadata in a file, written once per test binary.
pub fn metadata_file(idp: &SamlIdp) -> PathBuf {
    static METADATA: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = METADATA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        idp.write_metadata(&dir.path().join("idp.xml"));
        dir
    });
    dir.path().join("idp.xml")
}

/// An SP at `acs_url` and `entity_id` trusting `idp`, with the console's usual attribute
/// settings (`groups`, admin group `natterjack-admins`) and then `more` settings.
pub fn provider(
    idp: &SamlIdp,
    acs_url: &str,
    entity_id: &str,
    more: serde_json::Value,
) -> ServiceProvider {
    let mut settings = serde_json::json!({
        "idp_metadata_file": metadata_file(idp),
        "groups_attribute": "groups",
        "admin_group": ADMIN_GROUP,
    });
    if let (Some(settings), Some(more)) = (settings.as_object_mut(), more.as_object()) {
        settings.extend(more.clone());
    }
    let settings: SamlSettings = serde_json::from_value(settings).expect("settings");
    ServiceProvider::load(&settings, acs_url, entity_id)
        .unwrap_or_else(|e| panic!("{e}\n{}", idp.log()))
}

/// The wall clock, as the console passes it.
pub fn now() -> Timestamp {
    SystemClock.wall()
}

/// A fresh AuthnRequest of `sp` and the response `user` gets for it with `knobs`.
pub fn sign_on(
    idp: &SamlIdp,
    sp: &ServiceProvider,
    user: &str,
    knobs: &[(&str, &str)],
) -> (String, IdpResponse) {
    let redirect = sp.begin("relay", now()).expect("AuthnRequest");
    let response = idp.response(&redirect.url, user, knobs);
    assert_eq!(response.request_id, redirect.request_id);
    assert_eq!(response.relay_state, "relay");
    (redirect.request_id, response)
}

/// The response's XML.
pub fn decode(saml_response: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(saml_response)
        .expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

/// The `SAMLResponse` of `xml`.
pub fn encode(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// The one element `<{prefix}:{name} …>…</{prefix}:{name}>` starting at the first match of
/// `<{prefix}:{name}` (pysaml2 writes `ns1:` for the assertion namespace), with its range.
pub fn element(xml: &str, prefix: &str, name: &str) -> (std::ops::Range<usize>, String) {
    let open = format!("<{prefix}:{name}");
    let close = format!("</{prefix}:{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in {xml}"));
    let end = xml[start..]
        .find(&close)
        .map(|i| start + i + close.len())
        .unwrap_or_else(|| panic!("no {close} in {xml}"));
    (start..end, xml[start..end].to_owned())
}

/// An unsigned copy of a signed assertion naming `user` instead, under another id: what an
/// attacker holding alice's genuine response would add to become bob.
pub fn evil_copy(assertion: &str, genuine_user: &str, user: &str) -> String {
    let without_signature = match assertion.find("<ns2:Signature") {
        Some(start) => {
            let close = "</ns2:Signature>";
            let end = assertion[start..].find(close).expect("signature end") + start + close.len();
            format!("{}{}", &assertion[..start], &assertion[end..])
        }
        None => assertion.to_owned(),
    };
    let renamed = without_signature
        .replace(&format!(">{genuine_user}<"), &format!(">{user}<"))
        .replacen(" ID=\"", " ID=\"evil-", 1);
    assert_ne!(renamed, without_signature, "the copy names {user}");
    renamed
}
