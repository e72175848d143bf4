//! The test peers themselves, checked from outside before any server test relies on them:
//! the OpenLDAP directory (`support::slapd`) answers binds over StartTLS and LDAPS with its
//! ACLs in force and survives a restart; the OpenID provider (`support::oidc`) publishes
//! discovery and JWKS and issues RFC 9068 access tokens for the audience, rotates its keys,
//! counts fetches, and goes down on request; the SAML IdP (`support::saml_idp`) publishes
//! its metadata and answers an AuthnRequest with a signed response and the form that posts it.

use crate::support::client_trusting;
use crate::support::oidc::{AUDIENCE, OidcPeer, SERVICE_CLIENT_ID, USER_CLIENT_ID};
use crate::support::saml_idp::SamlIdp;
use crate::support::slapd::Slapd;
use crate::support::slapd::dev_pki;
use base64::Engine;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Whether the OpenLDAP client tools are installed (a SKIPPED message when not, a panic in
/// CI).
fn ldap_utils(test: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|d| d.join("ldapwhoami").is_file());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "ldap-utils is required in CI"
        );
        eprintln!("SKIPPED: {test}: ldap-utils is not installed");
    }
    found
}

/// Runs an OpenLDAP client tool trusting `ca`.
fn ldap_tool(tool: &str, ca: &Path, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .env("LDAPTLS_CACERT", ca)
        .env("LDAPTLS_REQCERT", "demand")
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

/// `ldapwhoami -x` as `dn`; `(exit code, stdout + stderr)`.
fn whoami(url: &str, starttls: bool, ca: &Path, dn: &str, password: &str) -> (i32, String) {
    let mut args = vec!["-H", url, "-x", "-D", dn, "-w", password];
    if starttls {
        args.push("-ZZ");
    }
    let out = ldap_tool("ldapwhoami", ca, &args);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `ldapsearch -LLL -x` over LDAPS with `bind` (`(dn, password file)`, or anonymous);
/// `(exit code, LDIF)`.
fn search(
    ldap: &Slapd,
    bind: Option<(&str, &Path)>,
    base: &str,
    filter: &str,
    attrs: &[&str],
) -> (i32, String) {
    let url = ldap.ldaps_url();
    let mut args = vec!["-LLL", "-H", &url, "-x", "-b", base];
    let file;
    if let Some((dn, password_file)) = bind {
        file = password_file.to_str().unwrap().to_owned();
        args.extend(["-D", dn, "-y", &file]);
    }
    args.push(filter);
    args.extend(attrs);
    let out = ldap_tool("ldapsearch", ldap.ca_file(), &args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_directory_binds_a_user_over_starttls_and_ldaps() {
    let test = "the_directory_binds_a_user_over_starttls_and_ldaps";
    let Some(ldap) = Slapd::shared() else { return };
    if !ldap_utils(test) {
        return;
    }
    let alice = ldap.user_dn("alice");
    assert_eq!(alice, format!("uid=alice,{}", ldap.people_base()));
    for (url, starttls) in [(ldap.ldap_url(), true), (ldap.ldaps_url(), false)] {
        let (code, out) = whoami(
            &url,
            starttls,
            ldap.ca_file(),
            &alice,
            ldap.user_password("alice"),
        );
        assert_eq!(code, 0, "{url}: {out}\n{}", ldap.log());
        assert_eq!(out.trim(), format!("dn:{alice}"), "{url}");

        let (code, out) = whoami(
            &url,
            starttls,
            ldap.ca_file(),
            &alice,
            "not-alices-password",
        );
        assert_eq!(code, 49, "{url}: a wrong password must fail: {out}");
        assert!(out.contains("Invalid credentials"), "{url}: {out}");

        // Someone else's password is no better.
        let (code, _) = whoami(
            &url,
            starttls,
            ldap.ca_file(),
            &alice,
            ldap.user_password("bob"),
        );
        assert_eq!(code, 49, "{url}");
    }

    // The TLS is real: a client trusting another CA refuses the directory's certificate.
    let other = tempfile::tempdir().unwrap();
    let other_ca = dev_pki(&other.path().join("pki")).ca;
    for (url, starttls) in [(ldap.ldap_url(), true), (ldap.ldaps_url(), false)] {
        let (code, out) = whoami(
            &url,
            starttls,
            &other_ca,
            &alice,
            ldap.user_password("alice"),
        );
        assert_ne!(code, 0, "{url}: trusted a certificate of another CA: {out}");
    }
}

#[tokio::test]
async fn the_directory_lets_the_service_account_find_people_and_groups_but_not_passwords() {
    let test = "the_directory_lets_the_service_account_find_people_and_groups_but_not_passwords";
    let Some(ldap) = Slapd::shared() else { return };
    if !ldap_utils(test) {
        return;
    }
    let password_file = ldap.service_password_file();
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap(),
        "search-service-pw"
    );
    let mode = std::fs::metadata(&password_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let service = Some((ldap.service_dn(), password_file.as_path()));

    let (code, ldif) = search(
        ldap,
        service,
        ldap.people_base(),
        "(uid=bob)",
        &["uid", "mail", "userPassword"],
    );
    assert_eq!(code, 0, "{ldif}\n{}", ldap.log());
    assert!(
        ldif.contains(&format!("dn: {}", ldap.user_dn("bob"))),
        "{ldif}"
    );
    assert!(ldif.contains("mail: bob@natterjack.test"), "{ldif}");
    assert!(
        !ldif.contains("userPassword"),
        "passwords must stay unreadable: {ldif}"
    );

    let (code, ldif) = search(
        ldap,
        service,
        ldap.people_base(),
        "(objectClass=inetOrgPerson)",
        &["uid"],
    );
    assert_eq!(code, 0);
    let mut uids: Vec<&str> = ldif
        .lines()
        .filter_map(|l| l.strip_prefix("uid: "))
        .collect();
    uids.sort_unstable();
    assert_eq!(uids, ["alice", "bob", "carol"]);

    let member = format!("(member={})", ldap.user_dn("bob"));
    let (code, ldif) = search(ldap, service, ldap.groups_base(), &member, &["cn"]);
    assert_eq!(code, 0);
    assert!(
        ldif.contains(&format!("dn: {}", ldap.admin_group_dn())),
        "{ldif}"
    );
    let member = format!("(member={})", ldap.user_dn("alice"));
    let (_, ldif) = search(ldap, service, ldap.groups_base(), &member, &["cn"]);
    assert!(!ldif.contains("dn:"), "alice is in no group: {ldif}");

    // Anonymous may bind and nothing else.
    let (_, ldif) = search(ldap, None, ldap.base_dn(), "(uid=bob)", &[]);
    assert!(
        !ldif.contains("dn:"),
        "anonymous read the directory: {ldif}"
    );

    // A user reads their own entry, not anyone else's.
    let dir = tempfile::tempdir().unwrap();
    let alice_password = dir.path().join("alice");
    std::fs::write(&alice_password, ldap.user_password("alice")).unwrap();
    let alice = ldap.user_dn("alice");
    let as_alice = Some((alice.as_str(), alice_password.as_path()));
    let (code, ldif) = search(ldap, as_alice, &alice, "(objectClass=*)", &["uid"]);
    assert_eq!(code, 0);
    assert!(ldif.contains("uid: alice"), "{ldif}");
    let (_, ldif) = search(ldap, as_alice, ldap.people_base(), "(uid=bob)", &[]);
    assert!(!ldif.contains("dn:"), "alice read bob's entry: {ldif}");
}

#[tokio::test]
async fn a_private_directory_stops_and_restarts_on_the_same_ports_with_its_data() {
    let test = "a_private_directory_stops_and_restarts_on_the_same_ports_with_its_data";
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let started = std::time::Instant::now();
    let Some(mut ldap) = Slapd::start(test, dir.path(), &tls).await else {
        return;
    };
    eprintln!("{test}: slapd listening after {:?}", started.elapsed());
    if !ldap_utils(test) {
        return;
    }
    let (ldap_url, ldaps_url) = (ldap.ldap_url(), ldap.ldaps_url());
    let carol = ldap.user_dn("carol");
    ldap.modify(&format!(
        "dn: {carol}\nchangetype: modify\nreplace: userPassword\nuserPassword: carol-changed-pw\n"
    ));
    assert_eq!(
        whoami(
            &ldaps_url,
            false,
            ldap.ca_file(),
            &carol,
            "carol-changed-pw"
        )
        .0,
        0
    );
    assert_eq!(
        whoami(
            &ldaps_url,
            false,
            ldap.ca_file(),
            &carol,
            ldap.user_password("carol")
        )
        .0,
        49
    );
    assert_eq!(ldap.admin_dn(), format!("cn=admin,{}", ldap.base_dn()));
    assert!(!ldap.admin_password().is_empty());

    ldap.stop().await;
    let (code, out) = whoami(
        &ldaps_url,
        false,
        ldap.ca_file(),
        &carol,
        "carol-changed-pw",
    );
    assert_ne!(code, 0, "a stopped directory answered: {out}");
    assert!(out.contains("Can't contact LDAP server"), "{out}");

    let started = std::time::Instant::now();
    ldap.restart().await;
    eprintln!("{test}: slapd restarted after {:?}", started.elapsed());
    assert_eq!(
        (ldap.ldap_url(), ldap.ldaps_url()),
        (ldap_url.clone(), ldaps_url)
    );
    let (code, out) = whoami(&ldap_url, true, ldap.ca_file(), &carol, "carol-changed-pw");
    assert_eq!(
        code,
        0,
        "the restarted directory lost its data: {out}\n{}",
        ldap.log()
    );
}

/// A compact JWS's header and payload, decoded (the signature is not checked here).
fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    let part = |p: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    (part(parts[0]), part(parts[1]))
}

/// GET `url` as JSON through a client trusting `ca`.
async fn get_json(ca: &Path, url: &str) -> Value {
    let response = client_trusting(ca, |b| b).get(url).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// The kid → kty of every key in the provider's JWKS (one fetch).
async fn jwks(oidc: &OidcPeer) -> Vec<(String, String)> {
    let discovery = format!("{}/.well-known/openid-configuration", oidc.issuer());
    let discovery = get_json(oidc.ca_file(), &discovery).await;
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap().to_owned();
    let set = get_json(oidc.ca_file(), &jwks_uri).await;
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k.get("d").is_none(), "a private key in the JWKS: {k}");
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["kty"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_openid_provider_issues_jwt_access_tokens_for_the_audience() {
    let Some(oidc) = OidcPeer::shared(AUDIENCE) else {
        return;
    };
    assert_eq!(oidc.audience(), AUDIENCE);
    let discovery = get_json(
        oidc.ca_file(),
        &format!("{}/.well-known/openid-configuration", oidc.issuer()),
    )
    .await;
    assert_eq!(discovery["issuer"], oidc.issuer());
    assert!(
        discovery["jwks_uri"]
            .as_str()
            .unwrap()
            .starts_with(oidc.issuer())
    );
    let keys = jwks(oidc).await;
    assert_eq!(keys.len(), 2, "{keys:?}");

    // (token, expected alg, kty, sub, preferred_username, groups, client_id)
    type Expected<'a> = (&'a str, &'a str, &'a str, &'a str, Option<Value>, &'a str);
    let cases: Vec<(String, Expected<'_>)> = vec![
        (
            oidc.client_token("RS256").await,
            (
                "RS256",
                "RSA",
                SERVICE_CLIENT_ID,
                "svcreports",
                None,
                SERVICE_CLIENT_ID,
            ),
        ),
        (
            oidc.client_token("ES256").await,
            (
                "ES256",
                "EC",
                SERVICE_CLIENT_ID,
                "svcreports",
                None,
                SERVICE_CLIENT_ID,
            ),
        ),
        (
            oidc.user_token("alice", "RS256").await,
            (
                "RS256",
                "RSA",
                "alice",
                "alice",
                Some(serde_json::json!([])),
                USER_CLIENT_ID,
            ),
        ),
        (
            oidc.user_token("bob", "ES256").await,
            (
                "ES256",
                "EC",
                "bob",
                "bob",
                Some(serde_json::json!(["natterjack-admins"])),
                USER_CLIENT_ID,
            ),
        ),
        (
            oidc.user_token("mallory", "RS256").await,
            (
                "RS256",
                "RSA",
                "mallory",
                "alice",
                Some(serde_json::json!([])),
                USER_CLIENT_ID,
            ),
        ),
    ];
    for (token, (alg, kty, sub, username, groups, client_id)) in cases {
        let (header, payload) = decode(&token);
        assert_eq!(header["typ"], "at+jwt", "{header}");
        assert_eq!(header["alg"], alg, "{header}");
        let kid = header["kid"].as_str().expect("kid");
        assert!(
            keys.contains(&(kid.to_owned(), kty.to_owned())),
            "kid {kid} ({kty}) is not in the JWKS {keys:?}"
        );
        assert_eq!(payload["iss"], oidc.issuer(), "{payload}");
        assert_eq!(payload["aud"], AUDIENCE, "{payload}");
        assert_eq!(payload["sub"], sub, "{payload}");
        assert_eq!(payload["preferred_username"], username, "{payload}");
        assert_eq!(payload.get("groups").cloned(), groups, "{payload}");
        assert_eq!(payload["client_id"], client_id, "{payload}");
        let (iat, exp) = (
            payload["iat"].as_i64().unwrap(),
            payload["exp"].as_i64().unwrap(),
        );
        assert_eq!(exp - iat, 3600, "{payload}");
        assert!(payload["jti"].is_string(), "{payload}");
    }
}

#[tokio::test]
async fn the_openid_provider_rotates_its_keys_counts_fetches_and_goes_down_on_request() {
    let test = "the_openid_provider_rotates_its_keys_counts_fetches_and_goes_down_on_request";
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let started = std::time::Instant::now();
    let Some(oidc) = OidcPeer::start(test, dir.path(), &tls, "https://api.natterjack.test").await
    else {
        return;
    };
    eprintln!(
        "{test}: the OpenID provider listening after {:?}",
        started.elapsed()
    );
    assert_eq!(
        (oidc.discovery_fetches().await, oidc.jwks_fetches().await),
        (0, 0)
    );

    let before = jwks(&oidc).await;
    assert_eq!(
        (oidc.discovery_fetches().await, oidc.jwks_fetches().await),
        (1, 1)
    );

    let kids = oidc.rotate().await;
    let after = jwks(&oidc).await;
    assert_eq!(
        (oidc.discovery_fetches().await, oidc.jwks_fetches().await),
        (2, 2)
    );
    let mut after_kids: Vec<String> = after.iter().map(|(kid, _)| kid.clone()).collect();
    let mut expected = kids.clone();
    after_kids.sort();
    expected.sort();
    assert_eq!(after_kids, expected, "the JWKS serves exactly the new keys");
    assert!(
        before.iter().all(|(kid, _)| !kids.contains(kid)),
        "rotation kept a kid: {before:?} {kids:?}"
    );

    // Tokens are signed with the new keys, for this peer's audience, and expire on request.
    let (header, payload) = decode(
        &oidc
            .user_token_expiring("bob", "ES256", Duration::from_secs(5))
            .await,
    );
    assert!(
        kids.contains(&header["kid"].as_str().unwrap().to_owned()),
        "{header}"
    );
    assert_eq!(payload["aud"], "https://api.natterjack.test");
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        5
    );
    let (header, payload) = decode(
        &oidc
            .client_token_expiring("RS256", Duration::from_secs(7))
            .await,
    );
    assert!(
        kids.contains(&header["kid"].as_str().unwrap().to_owned()),
        "{header}"
    );
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        7
    );

    // Down: the connection is reset; the control endpoints (and tokens) still work.
    let jwks_uri = format!("{}/jwks", oidc.issuer());
    oidc.down().await;
    let refused = client_trusting(oidc.ca_file(), |b| b)
        .get(&jwks_uri)
        .send()
        .await;
    assert!(refused.is_err(), "a down provider answered: {refused:?}");
    let _ = oidc.client_token("ES256").await;
    oidc.down_with_503().await;
    let unavailable = client_trusting(oidc.ca_file(), |b| b)
        .get(&jwks_uri)
        .send()
        .await
        .unwrap();
    assert_eq!(
        unavailable.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
    oidc.up().await;
    let served = client_trusting(oidc.ca_file(), |b| b)
        .get(&jwks_uri)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), reqwest::StatusCode::OK);
    assert_eq!(
        oidc.jwks_fetches().await,
        3,
        "refused fetches are not counted"
    );
    assert!(oidc.log().contains("oidc-provider"), "{}", oidc.log());
}

#[test]
fn the_saml_idp_publishes_its_metadata_and_answers_an_authn_request_with_a_signed_response() {
    let test =
        "the_saml_idp_publishes_its_metadata_and_answers_an_authn_request_with_a_signed_response";
    let Some(idp) = SamlIdp::shared(test) else {
        return;
    };
    let metadata = idp.metadata();
    assert!(
        metadata.contains(&format!(r#"entityID="{}""#, idp.entity_id())),
        "{metadata}"
    );
    assert!(metadata.contains("X509Certificate"), "{metadata}");
    assert!(
        metadata.contains(&format!(r#"Location="{}/sso""#, idp.base())),
        "{metadata}"
    );

    // An SP of the console's shape, from that metadata.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("idp.xml");
    idp.write_metadata(&file);
    let settings: natterjack_federation::saml::SamlSettings =
        serde_json::from_value(serde_json::json!({ "idp_metadata_file": file })).unwrap();
    let acs = "https://127.0.0.1:8443/console/saml/acs";
    let sp = natterjack_federation::saml::ServiceProvider::load(
        &settings,
        acs,
        "https://127.0.0.1:8443/console/saml/metadata",
    )
    .unwrap();
    let now = natterjack_core::clock::Clock::wall(&natterjack_core::clock::SystemClock);
    let redirect = sp.begin("state", now).unwrap();

    // What a browser sees: the form that posts the response to the ACS.
    let page = idp.sso_page(&redirect.url);
    assert!(
        page.contains(&format!(r#"<form method="post" action="{acs}">"#)),
        "{page}\n{}",
        idp.log()
    );
    assert!(page.contains(">Continue</button>"), "{page}");

    // What a test posts itself: bob's response, which the SP takes.
    let response = idp.response(&redirect.url, "bob", &[("sign", "response")]);
    assert_eq!(response.acs, acs);
    assert_eq!(response.relay_state, "state");
    assert_eq!(response.request_id, redirect.request_id);
    let identity = sp
        .finish(&response.saml_response, &redirect.request_id, now)
        .unwrap_or_else(|r| panic!("{}\n{}", r.reason(), idp.log()));
    assert_eq!(identity.subject, "bob");
}
