//! The configuration examples of `docs/CONFIGURATION.md` and `README.md` run against the real
//! peers, with only hosts, base DNs and file paths replaced: an example that stops working
//! fails here.

use crate::support::TestServer;
use crate::support::oidc::OidcPeer;
use crate::support::slapd::Slapd;
use reqwest::StatusCode;

const CONFIGURATION: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/CONFIGURATION.md"
));
const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));

/// The TOML block that follows `<!-- example: NAME -->` in `doc`.
fn example(doc: &str, name: &str) -> String {
    let marker = format!("<!-- example: {name} -->\n```toml\n");
    let start = doc.find(&marker).expect("example marker") + marker.len();
    let end = start + doc[start..].find("```").expect("end of the block");
    doc[start..end].to_owned()
}

#[tokio::test]
async fn directory_configuration_example_in_the_docs_works() {
    for doc in [CONFIGURATION, README] {
        directory_example_works(doc).await;
    }
}

async fn directory_example_works(doc: &str) {
    let Some(slapd) = Slapd::shared() else {
        return;
    };
    let toml = example(doc, "ldap")
        .replace("ldap://ldap.example.org", &slapd.ldap_url())
        .replace("ldaps://ldap.example.org", &slapd.ldaps_url())
        .replace(
            "/etc/natterjack/ldap-ca.pem",
            &slapd.ca_file().display().to_string(),
        )
        .replace(
            "/run/secrets/ldap-search-password",
            &slapd.service_password_file().display().to_string(),
        )
        .replace("dc=example,dc=org", "dc=natterjack,dc=test");
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), &toml, &[]).await;
    let bob = server
        .client()
        .get(server.url("/audit"))
        .basic_auth("bob", Some(slapd.user_password("bob")))
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status(), StatusCode::OK, "bob is in the admin group");
}

#[tokio::test]
async fn oidc_configuration_example_in_the_docs_works() {
    for doc in [CONFIGURATION, README] {
        oidc_example_works(doc).await;
    }
}

async fn oidc_example_works(doc: &str) {
    let audience = "https://natterjack.example.org";
    let Some(peer) = OidcPeer::shared(audience) else {
        return;
    };
    let toml = example(doc, "oidc")
        .replace("https://id.example.org", peer.issuer())
        .replace(
            "/etc/natterjack/id-ca.pem",
            &peer.ca_file().display().to_string(),
        );
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), &toml, &[]).await;
    let token = peer.user_token("bob", "ES256").await;
    let r = server
        .client()
        .get(server.url("/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "bob's groups claim makes him an admin"
    );
}
