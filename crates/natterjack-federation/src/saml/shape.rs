//! A first look at the raw response, before any signature is checked: what the whole
//! document may hold at all. These checks only ever refuse; no value read here decides who
//! the user is (that comes from the document as reduced to what the signature covers).
//!
//! - No document type declaration (entities and DTDs are an attack surface SAML never
//!   needs).
//! - No comments, CDATA sections or processing instructions anywhere: exclusive
//!   canonicalisation drops comments and turns CDATA into text, so inserting
//!   `bob<!---->.evil` into a NameID keeps the signature valid while a reader that stops at
//!   the first text node sees `bob`. Genuine IdPs write none of them.
//! - Exactly one `Assertion` element, whatever its namespace or depth, and no
//!   `EncryptedAssertion`: XML signature wrapping works by adding a second assertion beside,
//!   around or inside the signed one and hoping the reader takes the wrong one.
//! - The root is a SAML protocol `Response`; its `Destination`, `InResponseTo` and top-level
//!   status code are kept for the envelope checks (the envelope is not covered by a
//!   signature on the assertion alone, so those checks can refuse but never vouch).

use super::refusal::SamlRefusal;
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

const PROTOCOL_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

/// What the raw response looks like, once it passed [`inspect`].
#[derive(Debug, Default)]
pub(crate) struct Shape {
    /// The root `Response`'s `Destination`.
    pub(crate) destination: Option<String>,
    /// The root `Response`'s `InResponseTo`.
    pub(crate) in_response_to: Option<String>,
    /// The value of the first `StatusCode` of the root's `Status`.
    pub(crate) status: Option<String>,
    /// The one assertion's `ID`.
    pub(crate) assertion_id: Option<String>,
    /// Whether any `ds:Signature` is present at all.
    pub(crate) signed: bool,
}

/// Checks the raw document's shape (see the module documentation).
pub(crate) fn inspect(xml: &str) -> Result<Shape, SamlRefusal> {
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().check_comments = true;
    let mut shape = Shape::default();
    // The resolved (namespace, local name) of each open element.
    let mut open: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut assertions = 0usize;
    let mut root_seen = false;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|_| SamlRefusal::Malformed)?;
        let ns = match ns {
            ResolveResult::Bound(ns) => ns.as_ref().to_vec(),
            ResolveResult::Unbound => Vec::new(),
            ResolveResult::Unknown(_) => return Err(SamlRefusal::Malformed),
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = e.local_name().as_ref().to_vec();
                if !root_seen {
                    if ns != PROTOCOL_NS || local != b"Response" {
                        return Err(SamlRefusal::Malformed);
                    }
                    root_seen = true;
                    shape.destination = attribute(e, b"Destination")?;
                    shape.in_response_to = attribute(e, b"InResponseTo")?;
                } else if open.is_empty() {
                    // A second root element (the reader does not stop at the first).
                    return Err(SamlRefusal::Malformed);
                }
                match local.as_slice() {
                    b"EncryptedAssertion" => return Err(SamlRefusal::Encrypted),
                    b"Assertion" => {
                        assertions += 1;
                        if assertions > 1 {
                            return Err(SamlRefusal::AssertionCount);
                        }
                        if ns == ASSERTION_NS {
                            shape.assertion_id = attribute(e, b"ID")?;
                        }
                    }
                    b"Signature" if ns == DSIG_NS => shape.signed = true,
                    b"StatusCode"
                        if ns == PROTOCOL_NS
                            && shape.status.is_none()
                            && open.len() == 2
                            && open[1] == (PROTOCOL_NS.to_vec(), b"Status".to_vec()) =>
                    {
                        shape.status = attribute(e, b"Value")?;
                    }
                    _ => {}
                }
                if matches!(event, Event::Start(_)) {
                    open.push((ns, local));
                }
            }
            Event::End(_) => {
                open.pop();
            }
            Event::DocType(_) => return Err(SamlRefusal::Doctype),
            Event::Comment(_) | Event::CData(_) | Event::PI(_) => {
                return Err(SamlRefusal::Markup);
            }
            Event::Text(_) | Event::GeneralRef(_) | Event::Decl(_) => {}
            Event::Eof => break,
        }
    }
    if !root_seen || !open.is_empty() {
        return Err(SamlRefusal::Malformed);
    }
    if assertions != 1 || shape.assertion_id.is_none() {
        return Err(SamlRefusal::AssertionCount);
    }
    Ok(shape)
}

/// The value of the unprefixed attribute `name`, unescaped.
fn attribute(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, SamlRefusal> {
    for attr in e.attributes() {
        let attr = attr.map_err(|_| SamlRefusal::Malformed)?;
        if attr.key.as_ref() == name {
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|_| SamlRefusal::Malformed)?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = r#"xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion""#;

    fn response(inner: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><samlp:Response {NS} ID="r1" Destination="https://sp/acs" InResponseTo="req1"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{inner}</samlp:Response>"#
        )
    }

    #[test]
    fn a_plain_response_with_one_assertion_passes_and_its_envelope_is_read() {
        let shape = inspect(&response(
            r#"<saml:Assertion ID="a1"><saml:Subject><saml:NameID>bob</saml:NameID></saml:Subject></saml:Assertion>"#,
        ))
        .unwrap();
        assert_eq!(shape.destination.as_deref(), Some("https://sp/acs"));
        assert_eq!(shape.in_response_to.as_deref(), Some("req1"));
        assert_eq!(
            shape.status.as_deref(),
            Some("urn:oasis:names:tc:SAML:2.0:status:Success")
        );
        assert_eq!(shape.assertion_id.as_deref(), Some("a1"));
        assert!(!shape.signed);
    }

    #[test]
    fn a_second_assertion_anywhere_is_refused() {
        for inner in [
            r#"<saml:Assertion ID="a1"/><saml:Assertion ID="a2"/>"#,
            r#"<saml:Assertion ID="a1"><saml:Advice><saml:Assertion ID="a2"/></saml:Advice></saml:Assertion>"#,
            r#"<samlp:Extensions><saml:Assertion ID="a2"/></samlp:Extensions><saml:Assertion ID="a1"/>"#,
            r#"<saml:Assertion ID="a1"/><x:Assertion xmlns:x="urn:other" ID="a2"/>"#,
        ] {
            assert_eq!(
                inspect(&response(inner)).unwrap_err(),
                SamlRefusal::AssertionCount,
                "{inner}"
            );
        }
    }

    #[test]
    fn no_assertion_or_an_encrypted_one_is_refused() {
        assert_eq!(
            inspect(&response("")).unwrap_err(),
            SamlRefusal::AssertionCount
        );
        assert_eq!(
            inspect(&response("<saml:EncryptedAssertion/>")).unwrap_err(),
            SamlRefusal::Encrypted
        );
    }

    #[test]
    fn comments_cdata_and_processing_instructions_are_refused() {
        for inner in [
            r#"<saml:Assertion ID="a1"><saml:NameID>bob<!---->.evil</saml:NameID></saml:Assertion>"#,
            r#"<saml:Assertion ID="a1"><saml:NameID><![CDATA[bob]]>.evil</saml:NameID></saml:Assertion>"#,
            r#"<saml:Assertion ID="a1"><?pi x?></saml:Assertion>"#,
            r#"<!-- before --><saml:Assertion ID="a1"/>"#,
        ] {
            assert_eq!(
                inspect(&response(inner)).unwrap_err(),
                SamlRefusal::Markup,
                "{inner}"
            );
        }
    }

    #[test]
    fn a_doctype_is_refused() {
        let xml = format!(
            r#"<!DOCTYPE r [<!ENTITY x "bob">]>{}"#,
            response(r#"<saml:Assertion ID="a1"/>"#)
        );
        assert_eq!(inspect(&xml).unwrap_err(), SamlRefusal::Doctype);
    }

    #[test]
    fn another_root_or_trailing_content_is_malformed() {
        let assertion = format!(r#"<saml:Assertion {NS} ID="a1"/>"#);
        assert_eq!(inspect(&assertion).unwrap_err(), SamlRefusal::Malformed);
        let two_roots = format!(
            "{}{}",
            response(r#"<saml:Assertion ID="a1"/>"#),
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>"#
        );
        assert_eq!(inspect(&two_roots).unwrap_err(), SamlRefusal::Malformed);
        assert_eq!(inspect("<unclosed>").unwrap_err(), SamlRefusal::Malformed);
    }
}
