//! Single sign-on in the browser, through the real test identity providers: the buttons of
//! the login page, the provider's own pages, and back to the console signed in.

use super::{add_user, console_server, run, shared_pki_into};
use crate::support::console::users_signed_in;
use crate::support::oidc::{AUDIENCE, OidcPeer};
use crate::support::rsyslog::TlsFiles;
use crate::support::saml_idp::SamlIdp;
use crate::support::{TestServer, cli};
use serde_json::json;

/// A server whose console signs in through the shared SAML IdP (its metadata in a file, as
/// an operator downloads it), with `alice` and `bob` linked to the IdP's identities of the
/// same names (the default provisioning: only linked identities get in) and the IdP's group
/// `natterjack-admins` making admins. `public_url` is unset: the SP's ACS and entity id are
/// on the address the REST listener bound. `None` when the IdP cannot run here.
async fn saml_console(test: &'static str) -> Option<(TestServer, &'static SamlIdp)> {
    let idp = tokio::task::spawn_blocking(move || SamlIdp::shared(test))
        .await
        .expect("start the SAML IdP")?;
    let dir = tempfile::tempdir().expect("temp dir");
    let metadata = dir.path().join("idp.xml");
    idp.write_metadata(&metadata);
    let toml = format!(
        "[console.saml]\nidp_metadata_file = \"{}\"\nname_attribute = \"uid\"\n\
         groups_attribute = \"groups\"\nadmin_group = \"natterjack-admins\"\n",
        metadata.display()
    );
    let server = console_server(dir, &toml, &[]).await;
    let source = format!("saml:{}", idp.entity_id());
    for name in ["alice", "bob"] {
        add_user(&server, name);
        let (ok, _, stderr) = cli(
            &server.data_dir(),
            &["user", "link", name, "--source", &source, "--subject", name],
            "",
            &[],
        );
        assert!(ok, "user link {name}: {stderr}");
    }
    Some((server, idp))
}

#[tokio::test]
async fn alice_signs_in_through_the_saml_idp_and_lands_on_her_spaces() {
    let test =
        "console_browser::sign_on::alice_signs_in_through_the_saml_idp_and_lands_on_her_spaces";
    let Some((server, idp)) = saml_console(test).await else {
        return;
    };
    let params = json!({
        "base": server.base,
        "idp": idp.base(),
        "users": [{"username": "alice", "admin": false}],
    });
    let Some(report) = run(test, &server, "sign_on_saml", params).await else {
        return;
    };
    assert!(report.ok, "{report}\n{}", idp.log());
    report.assert_clean();
    assert_eq!(report.value["acs"], json!([200]), "{report}");
    assert_eq!(users_signed_in(&server), [("alice".into(), "saml".into())]);
}

#[tokio::test]
async fn bob_signs_in_through_the_saml_idp_as_an_admin_by_his_group() {
    let test =
        "console_browser::sign_on::bob_signs_in_through_the_saml_idp_as_an_admin_by_his_group";
    let Some((server, idp)) = saml_console(test).await else {
        return;
    };
    let params = json!({
        "base": server.base,
        "idp": idp.base(),
        "users": [{"username": "bob", "admin": true}],
    });
    let Some(report) = run(test, &server, "sign_on_saml", params).await else {
        return;
    };
    assert!(report.ok, "{report}\n{}", idp.log());
    report.assert_clean();
}

/// A server whose console signs in through a private OpenID provider (`[[auth.oidc]]` for
/// its issuer, accounts made on first use, the `groups` claim making admins, and
/// `[console.oidc]` with a public client registered with this server's callback). The
/// provider serves the shared key, so the browser's one pin covers it too, and the server
/// trusts it through the shared CA. `None` when the provider cannot run here.
async fn oidc_console(test: &str) -> Option<(TestServer, OidcPeer)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = dir.path().join("pki");
    shared_pki_into(&pki);
    let tls = TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join("server.pem"),
        key: pki.join("server-key.pem"),
    };
    let peer = OidcPeer::start(test, dir.path(), &tls, AUDIENCE).await?;
    let toml = format!(
        "[[auth.oidc]]\nissuer = \"{issuer}\"\naudience = \"{AUDIENCE}\"\nca_file = \"{ca}\"\n\
         provisioning = \"create\"\nadmin_claim = \"groups\"\nadmin_value = \"natterjack-admins\"\n\n\
         [console.oidc]\nissuer = \"{issuer}\"\nclient_id = \"{CONSOLE_CLIENT}\"\n",
        issuer = peer.issuer(),
        ca = tls.ca.display(),
    );
    let server = console_server(dir, &toml, &[]).await;
    let callback = server.url("/console/oidc/callback");
    peer.register_client(CONSOLE_CLIENT, &[&callback], None)
        .await;
    Some((server, peer))
}

/// The console's client at the OpenID provider.
const CONSOLE_CLIENT: &str = "natterjack-console";

#[tokio::test]
async fn alice_signs_in_through_the_openid_provider_and_lands_on_her_spaces() {
    let test = "console_browser::sign_on::alice_signs_in_through_the_openid_provider_and_lands_on_her_spaces";
    let Some((server, peer)) = oidc_console(test).await else {
        return;
    };
    let params = json!({
        "base": server.base,
        "issuer": peer.issuer(),
        "account": "alice",
        "username": "alice",
        "admin": false,
    });
    let Some(report) = run(test, &server, "sign_on_oidc", params).await else {
        return;
    };
    assert!(report.ok, "{report}\n{}", peer.log());
    report.assert_clean();
    assert_eq!(report.value["callback"], json!(200), "{report}");
    assert_eq!(users_signed_in(&server), [("alice".into(), "oidc".into())]);
}

#[tokio::test]
async fn bob_signs_in_through_the_openid_provider_as_an_admin_by_his_groups_claim() {
    let test = "console_browser::sign_on::bob_signs_in_through_the_openid_provider_as_an_admin_by_his_groups_claim";
    let Some((server, peer)) = oidc_console(test).await else {
        return;
    };
    let params = json!({
        "base": server.base,
        "issuer": peer.issuer(),
        "account": "bob",
        "username": "bob",
        "admin": true,
    });
    let Some(report) = run(test, &server, "sign_on_oidc", params).await else {
        return;
    };
    assert!(report.ok, "{report}\n{}", peer.log());
    report.assert_clean();
}
