//! SP-initiated sign-on: the AuthnRequest and the HTTP-Redirect URL that carries it.

use chrono::{DateTime, Utc};
use natterjack_core::domain::Timestamp;
use samael::metadata::HTTP_POST_BINDING;
use samael::schema::{AuthnRequest, Issuer};

/// The SAML bindings limit `RelayState` to 80 bytes; longer values are cut by some IdPs.
pub(crate) const MAX_RELAY_STATE: usize = 80;

/// Where to send the browser to sign in, and what to remember until it comes back.
#[derive(Debug, Clone)]
pub struct SamlRedirect {
    /// The IdP's single sign-on URL with `SAMLRequest` (deflated, base64) and `RelayState`:
    /// the `Location` of the 303.
    pub url: String,
    /// The AuthnRequest's `ID`: keep it with the browser's pending-login binding, and pass it
    /// to [`super::ServiceProvider::finish`] as the only acceptable `InResponseTo`.
    pub request_id: String,
}

/// An AuthnRequest could not be built.
#[derive(Debug, thiserror::Error)]
#[error("SAML AuthnRequest not built: {0}")]
pub struct RequestError(pub(crate) String);

/// A fresh request id: 128 random bits, as an XML NCName (it must not start with a digit).
fn request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut id = String::with_capacity(33);
    id.push('_');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// The redirect for one sign-on attempt.
pub(crate) fn redirect(
    sso_url: &str,
    entity_id: &str,
    acs_url: &str,
    relay_state: &str,
    now: Timestamp,
) -> Result<SamlRedirect, RequestError> {
    if relay_state.len() > MAX_RELAY_STATE {
        return Err(RequestError(format!(
            "RelayState longer than {MAX_RELAY_STATE} bytes"
        )));
    }
    let issue_instant = DateTime::<Utc>::from_timestamp_micros(now.micros())
        .ok_or_else(|| RequestError("the clock is out of range".into()))?;
    let id = request_id();
    let request = AuthnRequest {
        id: id.clone(),
        version: "2.0".into(),
        issue_instant,
        destination: Some(sso_url.to_owned()),
        issuer: Some(Issuer {
            format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:entity".into()),
            value: Some(entity_id.to_owned()),
            ..Issuer::default()
        }),
        assertion_consumer_service_url: Some(acs_url.to_owned()),
        protocol_binding: Some(HTTP_POST_BINDING.into()),
        ..AuthnRequest::default()
    };
    let url = request
        .redirect(relay_state)
        .map_err(|e| RequestError(e.to_string()))?
        .ok_or_else(|| RequestError("no destination".into()))?;
    Ok(SamlRedirect {
        url: url.to_string(),
        request_id: id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use std::io::Read;

    fn decoded_request(url: &str) -> String {
        let url = url::Url::parse(url).unwrap();
        let encoded = url
            .query_pairs()
            .find(|(k, _)| k == "SAMLRequest")
            .unwrap()
            .1
            .into_owned();
        let deflated = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let mut xml = String::new();
        // Raw DEFLATE (no zlib header), as the redirect binding sends it.
        flate2::read::DeflateDecoder::new(deflated.as_slice())
            .read_to_string(&mut xml)
            .unwrap();
        xml
    }

    #[test]
    fn the_request_goes_to_the_sso_url_with_our_issuer_acs_and_a_fresh_id() {
        let now = Timestamp::from_micros(1_700_000_000_000_000);
        let a = redirect(
            "https://idp.example/sso?x=1",
            "https://sp/metadata",
            "https://sp/acs",
            "state",
            now,
        )
        .unwrap();
        let b = redirect("https://idp.example/sso", "e", "https://sp/acs", "", now).unwrap();
        assert_ne!(a.request_id, b.request_id);
        assert_eq!(a.request_id.len(), 33);
        assert!(
            a.url
                .starts_with("https://idp.example/sso?x=1&SAMLRequest=")
        );
        assert!(a.url.ends_with("&RelayState=state"), "{}", a.url);
        let xml = decoded_request(&a.url);
        assert!(xml.contains(&format!(r#"ID="{}""#, a.request_id)), "{xml}");
        assert!(xml.contains(r#"AssertionConsumerServiceURL="https://sp/acs""#));
        assert!(xml.contains(r#"Destination="https://idp.example/sso?x=1""#));
        assert!(xml.contains(">https://sp/metadata</saml2:Issuer>"), "{xml}");
        assert!(
            xml.contains(r#"IssueInstant="2023-11-14T22:13:20.000Z""#),
            "{xml}"
        );
    }

    #[test]
    fn a_relay_state_over_80_bytes_is_refused() {
        let now = Timestamp::from_micros(0);
        let long = "x".repeat(81);
        assert!(redirect("https://idp/sso", "e", "https://sp/acs", &long, now).is_err());
        assert!(redirect("https://idp/sso", "e", "https://sp/acs", &long[..80], now).is_ok());
    }
}
