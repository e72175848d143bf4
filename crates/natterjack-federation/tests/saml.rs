//! SAML 2.0 sign-on against a real IdP (pysaml2 with xmlsec1, `support::saml_idp`): the happy
//! paths, then every refusal the ACS owes, each from a response the IdP really made and
//! signed, either asked for with a knob or taken apart by the test afterwards (signature
//! wrapping, the comment in the NameID).
// Tests read the real clock: the IdP stamps its assertions with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[path = "../../natterjack/tests/it/support/saml_idp.rs"]
mod saml_idp;
#[path = "saml/support.rs"]
mod support;

use natterjack_core::domain::Timestamp;
use natterjack_federation::saml::{SamlRefusal, SamlSettings, SeenAssertions, ServiceProvider};
use samael::crypto::CryptoProvider as _;
use support::{
    ACS_URL, ADMIN_GROUP, ENTITY_ID, decode, element, encode, evil_copy, now, provider, setup,
    sign_on,
};

/// The SP's answer to `saml_response` for `request_id` now, which must be `refusal`.
fn assert_refused(
    sp: &ServiceProvider,
    saml_response: &str,
    request_id: &str,
    refusal: SamlRefusal,
) {
    match sp.finish(saml_response, request_id, now()) {
        Err(r) => assert_eq!(r, refusal, "refused for another reason: {}", r.reason()),
        Ok(identity) => panic!("accepted {identity:?}; expected {}", refusal.reason()),
    }
}

#[test]
fn alice_signs_in_with_a_signed_assertion_and_is_no_admin() {
    let Some((idp, sp)) = setup("alice_signs_in_with_a_signed_assertion_and_is_no_admin") else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "alice", &[("sign", "assertion")]);
    assert_eq!(response.acs, ACS_URL);
    let identity = sp
        .finish(&response.saml_response, &request_id, now())
        .unwrap_or_else(|r| panic!("{}\n{}", r.reason(), decode(&response.saml_response)));
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.name_id, "alice");
    assert_eq!(identity.idp, idp.entity_id());
    assert!(identity.groups.is_empty());
    assert!(!identity.admin);
    assert!(identity.valid_until > now());
    assert!(
        decode(&response.saml_response).contains(&identity.assertion_id),
        "the assertion id is the response's"
    );
}

#[test]
fn bob_signs_in_with_a_signed_response_and_is_an_admin() {
    let Some((idp, sp)) = setup("bob_signs_in_with_a_signed_response_and_is_an_admin") else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "bob", &[("sign", "response")]);
    let identity = sp
        .finish(&response.saml_response, &request_id, now())
        .unwrap_or_else(|r| panic!("{}\n{}", r.reason(), decode(&response.saml_response)));
    assert_eq!(identity.subject, "bob");
    assert_eq!(identity.groups, vec![ADMIN_GROUP.to_owned()]);
    assert!(identity.admin);
}

#[test]
fn a_response_signed_on_both_the_response_and_the_assertion_is_taken() {
    let Some((idp, sp)) =
        setup("a_response_signed_on_both_the_response_and_the_assertion_is_taken")
    else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "bob", &[("sign", "both")]);
    let identity = sp
        .finish(&response.saml_response, &request_id, now())
        .unwrap_or_else(|r| panic!("{}", r.reason()));
    assert_eq!(identity.subject, "bob");
    assert!(identity.admin);
}

#[test]
fn the_name_attribute_names_the_user_when_configured() {
    let Some((idp, _)) = setup("the_name_attribute_names_the_user_when_configured") else {
        return;
    };
    let sp = provider(
        idp,
        ACS_URL,
        ENTITY_ID,
        serde_json::json!({"name_attribute": "uid"}),
    );
    let (request_id, response) = sign_on(idp, &sp, "bob", &[]);
    let identity = sp
        .finish(&response.saml_response, &request_id, now())
        .unwrap_or_else(|r| panic!("{}", r.reason()));
    assert_eq!(identity.subject, "bob");

    let sp = provider(
        idp,
        ACS_URL,
        ENTITY_ID,
        serde_json::json!({"name_attribute": "mail"}),
    );
    let (request_id, response) = sign_on(idp, &sp, "bob", &[]);
    assert_refused(
        &sp,
        &response.saml_response,
        &request_id,
        SamlRefusal::NoSubject,
    );
}

#[test]
fn an_unsigned_assertion_is_refused() {
    let Some((idp, sp)) = setup("an_unsigned_assertion_is_refused") else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "bob", &[("sign", "none")]);
    assert!(!decode(&response.saml_response).contains("Signature"));
    assert_refused(
        &sp,
        &response.saml_response,
        &request_id,
        SamlRefusal::Unsigned,
    );
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let Some((idp, sp)) = setup("a_signature_by_another_key_is_refused") else {
        return;
    };
    for sign in ["assertion", "response"] {
        let (request_id, response) = sign_on(idp, &sp, "bob", &[("sign", sign), ("key", "other")]);
        assert_refused(
            &sp,
            &response.saml_response,
            &request_id,
            SamlRefusal::Signature,
        );
    }
}

#[test]
fn a_name_id_rewritten_after_signing_is_refused() {
    let Some((idp, sp)) = setup("a_name_id_rewritten_after_signing_is_refused") else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "alice", &[]);
    let xml = decode(&response.saml_response).replace(">alice<", ">bob<");
    assert_refused(&sp, &encode(&xml), &request_id, SamlRefusal::Signature);
}

#[test]
fn a_second_unsigned_assertion_beside_the_signed_one_is_refused() {
    let Some((idp, sp)) = setup("a_second_unsigned_assertion_beside_the_signed_one_is_refused")
    else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "alice", &[]);
    let xml = decode(&response.saml_response);
    let (range, signed) = element(&xml, "ns1", "Assertion");
    let evil = evil_copy(&signed, "alice", "bob");
    // Before and after the signed one: a reader taking the first or the last is fooled.
    for wrapped in [
        format!("{}{evil}{}", &xml[..range.start], &xml[range.start..]),
        format!("{}{evil}{}", &xml[..range.end], &xml[range.end..]),
    ] {
        assert_refused(
            &sp,
            &encode(&wrapped),
            &request_id,
            SamlRefusal::AssertionCount,
        );
    }
}

#[test]
fn the_signed_assertion_moved_into_extensions_with_an_evil_one_in_its_place_is_refused() {
    let Some((idp, sp)) = setup(
        "the_signed_assertion_moved_into_extensions_with_an_evil_one_in_its_place_is_refused",
    ) else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "alice", &[]);
    let xml = decode(&response.saml_response);
    let (range, signed) = element(&xml, "ns1", "Assertion");
    let evil = evil_copy(&signed, "alice", "bob");
    let without = format!("{}{evil}{}", &xml[..range.start], &xml[range.end..]);
    // Extensions come right after the response's Issuer.
    let (issuer, _) = element(&without, "ns1", "Issuer");
    let wrapped = format!(
        "{}<ns0:Extensions>{signed}</ns0:Extensions>{}",
        &without[..issuer.end],
        &without[issuer.end..]
    );
    assert_refused(
        &sp,
        &encode(&wrapped),
        &request_id,
        SamlRefusal::AssertionCount,
    );
}

#[test]
fn the_signed_assertion_hidden_in_a_signature_object_of_an_evil_one_is_refused() {
    let Some((idp, sp)) =
        setup("the_signed_assertion_hidden_in_a_signature_object_of_an_evil_one_is_refused")
    else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "alice", &[]);
    let xml = decode(&response.saml_response);
    let (range, signed) = element(&xml, "ns1", "Assertion");
    // The evil assertion carries the genuine signature, whose ds:Object holds the genuine
    // assertion: the reference still resolves (by ID) to signed content.
    let (_, signature) = element(&signed, "ns2", "Signature");
    let signature_with_object = signature.replace(
        "</ns2:Signature>",
        &format!("<ns2:Object>{signed}</ns2:Object></ns2:Signature>"),
    );
    let evil_body = evil_copy(&signed, "alice", "bob");
    // Where the signature sits in an assertion: right after its Issuer.
    let (issuer, _) = element(&evil_body, "ns1", "Issuer");
    let evil = format!(
        "{}{signature_with_object}{}",
        &evil_body[..issuer.end],
        &evil_body[issuer.end..]
    );
    let wrapped = format!("{}{evil}{}", &xml[..range.start], &xml[range.end..]);
    assert_refused(
        &sp,
        &encode(&wrapped),
        &request_id,
        SamlRefusal::AssertionCount,
    );
}

#[test]
fn an_evil_assertion_wrapping_the_signed_one_is_refused() {
    let Some((idp, sp)) = setup("an_evil_assertion_wrapping_the_signed_one_is_refused") else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "alice", &[]);
    let xml = decode(&response.saml_response);
    let (range, signed) = element(&xml, "ns1", "Assertion");
    let evil = evil_copy(&signed, "alice", "bob");
    let wrapping = evil.replace(
        "</ns1:Assertion>",
        &format!("<ns1:Advice>{signed}</ns1:Advice></ns1:Assertion>"),
    );
    let wrapped = format!("{}{wrapping}{}", &xml[..range.start], &xml[range.end..]);
    assert_refused(
        &sp,
        &encode(&wrapped),
        &request_id,
        SamlRefusal::AssertionCount,
    );
}

#[test]
fn a_comment_inserted_in_the_name_id_is_refused_though_the_signature_still_verifies() {
    let Some((idp, sp)) =
        setup("a_comment_inserted_in_the_name_id_is_refused_though_the_signature_still_verifies")
    else {
        return;
    };
    // bob.evil is the attacker; the comment would make a naive reader see bob.
    for sign in ["assertion", "response"] {
        let (request_id, response) = sign_on(idp, &sp, "bob.evil", &[("sign", sign)]);
        let xml = decode(&response.saml_response);
        for comment in ["<!---->", "<!-- -->"] {
            let tampered = xml.replace(">bob.evil<", &format!(">bob{comment}.evil<"));
            assert_ne!(tampered, xml);
            // The attack is real: canonicalisation drops comments, so xmlsec still verifies.
            let certs = idp_certificates(idp);
            assert!(
                certs
                    .iter()
                    .any(|cert| samael::crypto::Crypto::verify_signed_xml(
                        &tampered,
                        cert,
                        Some("ID")
                    )
                    .is_ok()),
                "the signature still verifies with the comment inside"
            );
            assert_refused(&sp, &encode(&tampered), &request_id, SamlRefusal::Markup);
        }
    }
}

#[test]
fn a_character_reference_in_the_name_id_is_read_whole() {
    let Some((idp, sp)) = setup("a_character_reference_in_the_name_id_is_read_whole") else {
        return;
    };
    // `&#46;` canonicalises to `.`, so the signature holds; the name must not stop at it.
    let (request_id, response) = sign_on(idp, &sp, "bob.evil", &[]);
    let xml = decode(&response.saml_response).replace(">bob.evil<", ">bob&#46;evil<");
    let identity = sp
        .finish(&encode(&xml), &request_id, now())
        .unwrap_or_else(|r| panic!("{}", r.reason()));
    assert_eq!(identity.subject, "bob.evil");
}

/// The IdP's signing certificates, from its metadata.
fn idp_certificates(idp: &saml_idp::SamlIdp) -> Vec<samael::crypto::CertificateDer> {
    let sp = samael::service_provider::ServiceProvider {
        idp_metadata: idp.metadata().parse().expect("IdP metadata"),
        ..Default::default()
    };
    sp.idp_signing_certs()
        .expect("certificates")
        .expect("a signing certificate")
}

#[test]
fn a_response_for_another_audience_is_refused() {
    let Some((idp, sp)) = setup("a_response_for_another_audience_is_refused") else {
        return;
    };
    let (request_id, response) = sign_on(
        idp,
        &sp,
        "bob",
        &[("audience", "https://other.example/saml/metadata")],
    );
    assert_refused(
        &sp,
        &response.saml_response,
        &request_id,
        SamlRefusal::Audience,
    );
}

#[test]
fn an_expired_assertion_is_refused() {
    let Some((idp, sp)) = setup("an_expired_assertion_is_refused") else {
        return;
    };
    // Issued now, but valid only until five minutes ago (beyond the minute of skew).
    let (request_id, response) = sign_on(idp, &sp, "bob", &[("lifetime", "-300")]);
    assert_refused(
        &sp,
        &response.saml_response,
        &request_id,
        SamlRefusal::Expired,
    );
}

#[test]
fn an_assertion_is_refused_once_its_lifetime_and_the_skew_have_passed() {
    let Some((idp, sp)) =
        setup("an_assertion_is_refused_once_its_lifetime_and_the_skew_have_passed")
    else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "bob", &[("lifetime", "120")]);
    let identity = sp
        .finish(&response.saml_response, &request_id, now())
        .unwrap_or_else(|r| panic!("{}", r.reason()));
    // Within the skew past its end it is still taken; past both, never.
    let later = |secs: i64| Timestamp::from_micros(now().micros() + secs * 1_000_000);
    assert!(
        sp.finish(&response.saml_response, &request_id, later(150))
            .is_ok()
    );
    assert_eq!(
        sp.finish(&response.saml_response, &request_id, later(190))
            .unwrap_err(),
        SamlRefusal::Expired
    );
    assert!(identity.valid_until < later(190));
}

#[test]
fn a_replayed_assertion_is_refused() {
    let Some((idp, sp)) = setup("a_replayed_assertion_is_refused") else {
        return;
    };
    let seen = SeenAssertions::default();
    let (request_id, response) = sign_on(idp, &sp, "alice", &[]);
    let first = sp
        .finish(&response.saml_response, &request_id, now())
        .unwrap_or_else(|r| panic!("{}", r.reason()));
    assert!(seen.first_use(&first.assertion_id, first.valid_until, now()));
    // The same post again (the request id was kept, as an attacker replaying the form would
    // also replay the pending-login cookie if they had it).
    let again = sp
        .finish(&response.saml_response, &request_id, now())
        .unwrap_or_else(|r| panic!("{}", r.reason()));
    assert!(!seen.first_use(&again.assertion_id, again.valid_until, now()));
    // A fresh sign-on of the same user is a new assertion.
    let (request_id, response) = sign_on(idp, &sp, "alice", &[]);
    let next = sp
        .finish(&response.saml_response, &request_id, now())
        .unwrap_or_else(|r| panic!("{}", r.reason()));
    assert!(seen.first_use(&next.assertion_id, next.valid_until, now()));
}

#[test]
fn a_response_to_a_request_the_sp_never_made_is_refused() {
    let Some((idp, sp)) = setup("a_response_to_a_request_the_sp_never_made_is_refused") else {
        return;
    };
    let (request_id, response) =
        sign_on(idp, &sp, "bob", &[("in_response_to", "_never-made-here")]);
    assert_refused(
        &sp,
        &response.saml_response,
        &request_id,
        SamlRefusal::InResponseTo,
    );
}

#[test]
fn a_response_to_another_pending_request_is_refused() {
    let Some((idp, sp)) = setup("a_response_to_another_pending_request_is_refused") else {
        return;
    };
    // Two browsers sign on at once; the response of one is posted by the other.
    let (mine, _) = sign_on(idp, &sp, "alice", &[]);
    let (_, theirs) = sign_on(idp, &sp, "bob", &[]);
    assert_refused(&sp, &theirs.saml_response, &mine, SamlRefusal::InResponseTo);
}

#[test]
fn an_unsolicited_response_is_refused() {
    let Some((idp, sp)) = setup("an_unsolicited_response_is_refused") else {
        return;
    };
    let (request_id, response) = sign_on(idp, &sp, "bob", &[("in_response_to", "")]);
    assert!(!decode(&response.saml_response).contains("InResponseTo"));
    assert_refused(
        &sp,
        &response.saml_response,
        &request_id,
        SamlRefusal::Unsolicited,
    );
    // Nor when the caller has no pending request at all.
    assert_refused(&sp, &response.saml_response, "", SamlRefusal::Unsolicited);
}

#[test]
fn a_response_sent_to_another_acs_is_refused() {
    let Some((idp, sp)) = setup("a_response_sent_to_another_acs_is_refused") else {
        return;
    };
    // Another SP of the same entity (another node's ACS) asked; its response is posted here.
    let other = provider(
        idp,
        "https://127.0.0.1:9443/console/saml/acs",
        ENTITY_ID,
        serde_json::json!({}),
    );
    let (request_id, response) = sign_on(idp, &other, "bob", &[]);
    assert_refused(
        &sp,
        &response.saml_response,
        &request_id,
        SamlRefusal::Destination,
    );
}

#[test]
fn the_sp_metadata_names_its_entity_id_and_acs_and_wants_signed_assertions() {
    let Some((_, sp)) =
        setup("the_sp_metadata_names_its_entity_id_and_acs_and_wants_signed_assertions")
    else {
        return;
    };
    let xml = sp.metadata();
    assert!(xml.contains(&format!(r#"entityID="{ENTITY_ID}""#)), "{xml}");
    assert!(xml.contains(&format!(r#"Location="{ACS_URL}""#)), "{xml}");
    assert!(
        xml.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"),
        "{xml}"
    );
    assert!(xml.contains(r#"WantAssertionsSigned="true""#), "{xml}");
    // It parses back as metadata.
    let parsed: samael::metadata::EntityDescriptor = xml.parse().unwrap();
    assert_eq!(parsed.entity_id.as_deref(), Some(ENTITY_ID));
}

#[test]
fn idp_metadata_without_a_signing_certificate_is_refused_at_load() {
    let Some(idp) =
        saml_idp::SamlIdp::shared("idp_metadata_without_a_signing_certificate_is_refused_at_load")
    else {
        return;
    };
    let metadata = idp.metadata();
    let (range, _) = element(&metadata, "ns0", "KeyDescriptor");
    let without = format!("{}{}", &metadata[..range.start], &metadata[range.end..]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("idp.xml");
    std::fs::write(&file, without).unwrap();
    let settings: SamlSettings =
        serde_json::from_value(serde_json::json!({ "idp_metadata_file": file })).unwrap();
    let error = ServiceProvider::load(&settings, ACS_URL, ENTITY_ID).unwrap_err();
    assert!(error.contains("signing certificate"), "{error}");
}

#[test]
fn the_idp_page_posts_the_response_to_the_acs_with_a_continue_button() {
    let Some((idp, sp)) =
        setup("the_idp_page_posts_the_response_to_the_acs_with_a_continue_button")
    else {
        return;
    };
    let redirect = sp.begin("back-to-spaces", now()).unwrap();
    assert!(
        redirect
            .url
            .starts_with(&format!("{}/sso?SAMLRequest=", idp.base()))
    );
    let page = idp.sso_page(&redirect.url);
    assert!(
        page.contains(&format!(r#"<form method="post" action="{ACS_URL}">"#)),
        "{page}"
    );
    assert!(page.contains(r#"name="SAMLResponse""#), "{page}");
    assert!(
        page.contains(r#"name="RelayState" value="back-to-spaces""#),
        "{page}"
    );
    assert!(page.contains(">Continue</button>"), "{page}");
    assert!(!page.contains("<script"), "{page}");
}
