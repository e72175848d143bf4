//! Single sign-on through the console of a real server, driven with reqwest as a browser
//! would (the identity provider's answer posted or redirected back by hand, cookies set by
//! the test): SAML 2.0 against the pysaml2 IdP (`support::saml_idp`) and OpenID Connect
//! against the oidc-provider peer (`support::oidc`). A sign-on is bound to the browser that
//! started it by the `__Host-natterjack-sso` cookie: a replayed response, one meant for
//! another browser's sign-on, one without the cookie and a forged `state` are refused, and
//! none of them opens a session.

use crate::support::TestServer;
use crate::support::console::{
    Console, SESSION, SIGN_ON, location, new_session, set_cookie, users_signed_in,
};
use crate::support::oidc::{AUDIENCE, OidcPeer};
use crate::support::saml_idp::{IdpResponse, SamlIdp};
use reqwest::header::{COOKIE, ORIGIN};
use reqwest::{Response, StatusCode};

/// The page a finished sign-on answers: it moves on to the spaces by itself, without a
/// redirect (which would not carry the new Strict cookie after a cross-site start).
fn assert_signed_in_page(page: &str, user: &str) {
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"0;url=/console/spaces\">"),
        "{page}"
    );
    assert!(page.contains("href=\"/console/spaces\""), "{page}");
    assert!(page.contains(&format!("Signed in as {user}")), "{page}");
}

/// The pending sign-on cookie a start set, checked for the contract's attributes.
fn sign_on_cookie(response: &Response) -> String {
    let cookie = set_cookie(response, SIGN_ON).expect("a sign-on cookie");
    for attribute in [
        "Secure",
        "HttpOnly",
        "SameSite=None",
        "Path=/",
        "Max-Age=300",
    ] {
        assert!(cookie.has(attribute), "{attribute}: {cookie:?}");
    }
    assert!(!cookie.names("Domain"), "{cookie:?}");
    assert!(!cookie.value.is_empty());
    cookie.value
}

/// Checks a refused sign-on: 403, no session, and the audit record's reason.
async fn refused(server: &TestServer, response: Response, why: &str) {
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "{why}");
    assert!(new_session(&response).is_none(), "{why}: a session opened");
    let id = crate::support::console::request_id(&response);
    let record = server.completion(&id).await.record;
    assert_eq!(record.transport, natterjack_core::audit::Transport::Console);
    let reason = record.reason.unwrap_or_default();
    assert!(reason.contains(why), "{why:?} not in {reason:?}");
}

/// A server whose console signs in through `idp`, provisioning accounts on first use.
async fn saml_server(idp: &SamlIdp) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("idp.xml");
    idp.write_metadata(&metadata);
    let toml = format!(
        "[console.saml]\nidp_metadata_file = \"{}\"\nname_attribute = \"uid\"\n\
         groups_attribute = \"groups\"\nadmin_group = \"natterjack-admins\"\n\
         provisioning = \"create\"\n",
        metadata.display()
    );
    TestServer::start_configured(dir, &toml, &[]).await
}

/// Presses "Sign in with SAML": the IdP URL the browser is sent to and the sign-on cookie.
async fn start_saml(console: &Console<'_>) -> (String, String) {
    let r = console
        .form("/console/saml/login", &[], &[])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = sign_on_cookie(&r);
    (leaving_for(r).await, cookie)
}

/// Where the page a sign-on button answers moves the browser on to (its `meta` refresh,
/// also its one link), unescaped.
async fn leaving_for(r: Response) -> String {
    let body = r.text().await.unwrap();
    let start = body.find("content=\"0;url=").expect("a meta refresh") + "content=\"0;url=".len();
    let url = &body[start..start + body[start..].find('"').unwrap()];
    url.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
}

/// The IdP's form posted to the console's ACS by the browser: a cross-site POST from the
/// IdP's page, carrying the sign-on cookie `sign_on` when given.
async fn post_to_acs(
    console: &Console<'_>,
    idp: &SamlIdp,
    response: &IdpResponse,
    sign_on: Option<&str>,
) -> Response {
    assert_eq!(
        response.acs,
        console.server.url("/console/saml/acs"),
        "the request names the console's ACS"
    );
    let mut request = console
        .client()
        .post(&response.acs)
        .header(ORIGIN, idp.base())
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("SAMLResponse", response.saml_response.as_str()),
            ("RelayState", response.relay_state.as_str()),
        ]);
    if let Some(cookie) = sign_on {
        request = request.header(COOKIE, format!("{SIGN_ON}={cookie}"));
    }
    request.send().await.unwrap()
}

/// The session a finished sign-on opened for `user`, checked on its landing page.
async fn opened(response: Response, user: &str) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let session = new_session(&response).expect("a session cookie");
    let cleared = set_cookie(&response, SIGN_ON).expect("the sign-on cookie is cleared");
    assert!(
        cleared.value.is_empty() && cleared.has("Max-Age=0"),
        "{cleared:?}"
    );
    let cookie = set_cookie(&response, SESSION).unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.has(attribute), "{attribute}: {cookie:?}");
    }
    assert_signed_in_page(&response.text().await.unwrap(), user);
    session
}

#[tokio::test]
async fn a_saml_sign_on_opens_a_console_session_for_the_idps_user() {
    let test = "console_sign_on::a_saml_sign_on_opens_a_console_session_for_the_idps_user";
    let Some(idp) = SamlIdp::shared(test) else {
        return;
    };
    let server = saml_server(idp).await;
    let console = Console::of(&server);
    let login = console.page_anonymous("/console/login").await;
    assert!(
        login.contains("action=\"/console/saml/login\"") && login.contains("Sign in with SAML"),
        "{login}"
    );
    let (to_idp, cookie) = start_saml(&console).await;
    assert!(to_idp.starts_with(idp.base()), "{to_idp}");
    assert!(to_idp.contains("SAMLRequest="), "{to_idp}");
    let response = idp.response(&to_idp, "alice", &[]);
    let r = post_to_acs(&console, idp, &response, Some(&cookie)).await;
    let session = opened(r, "alice").await;
    let page = console.page(&session, "/console/spaces").await;
    assert!(page.contains("<span class=\"user\">alice</span>"), "{page}");
    assert!(!page.contains("href=\"/console/audit\""), "{page}");
    assert_eq!(
        users_signed_in(&server),
        [("alice".to_owned(), "saml".to_owned())]
    );
}

#[tokio::test]
async fn a_member_of_the_idps_admin_group_gets_a_session_with_the_admin_pages() {
    let test =
        "console_sign_on::a_member_of_the_idps_admin_group_gets_a_session_with_the_admin_pages";
    let Some(idp) = SamlIdp::shared(test) else {
        return;
    };
    let server = saml_server(idp).await;
    let console = Console::of(&server);
    let (to_idp, cookie) = start_saml(&console).await;
    let response = idp.response(&to_idp, "bob", &[]);
    let session = opened(
        post_to_acs(&console, idp, &response, Some(&cookie)).await,
        "bob",
    )
    .await;
    let page = console.page(&session, "/console/spaces").await;
    assert!(page.contains("href=\"/console/audit\""), "{page}");
    assert_eq!(
        console.get(Some(&session), "/console/audit").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_saml_response_posted_again_is_refused_whichever_sign_on_cookie_it_comes_with() {
    let test = "console_sign_on::a_saml_response_posted_again_is_refused_whichever_sign_on_cookie_it_comes_with";
    let Some(idp) = SamlIdp::shared(test) else {
        return;
    };
    let server = saml_server(idp).await;
    let console = Console::of(&server);
    let (to_idp, cookie) = start_saml(&console).await;
    let response = idp.response(&to_idp, "alice", &[]);
    opened(
        post_to_acs(&console, idp, &response, Some(&cookie)).await,
        "alice",
    )
    .await;
    // The same browser (or whoever copied its cookie) posts the same response again.
    let r = post_to_acs(&console, idp, &response, Some(&cookie)).await;
    refused(&server, r, "no pending sign-on for this browser").await;
    // An attacker who captured the response starts a sign-on of their own and posts it.
    let (_, theirs) = start_saml(&console).await;
    let r = post_to_acs(&console, idp, &response, Some(&theirs)).await;
    refused(&server, r, "sign-on refused").await;
    assert_eq!(users_signed_in(&server).len(), 1);
}

#[tokio::test]
async fn a_saml_response_for_another_browsers_sign_on_is_refused_and_leaves_that_sign_on_intact() {
    let test = "console_sign_on::a_saml_response_for_another_browsers_sign_on_is_refused_and_leaves_that_sign_on_intact";
    let Some(idp) = SamlIdp::shared(test) else {
        return;
    };
    let server = saml_server(idp).await;
    let console = Console::of(&server);
    let (victims_request, victims_cookie) = start_saml(&console).await;
    let (_, attackers_cookie) = start_saml(&console).await;
    let response = idp.response(&victims_request, "alice", &[]);
    // The victim's response in the attacker's browser: its pending request is another one.
    let r = post_to_acs(&console, idp, &response, Some(&attackers_cookie)).await;
    refused(&server, r, "sign-on refused").await;
    assert!(users_signed_in(&server).is_empty());
    // The browser that started it still finishes it.
    opened(
        post_to_acs(&console, idp, &response, Some(&victims_cookie)).await,
        "alice",
    )
    .await;
}

#[tokio::test]
async fn a_saml_response_posted_without_the_sign_on_cookie_is_refused() {
    let test = "console_sign_on::a_saml_response_posted_without_the_sign_on_cookie_is_refused";
    let Some(idp) = SamlIdp::shared(test) else {
        return;
    };
    let server = saml_server(idp).await;
    let console = Console::of(&server);
    let (to_idp, cookie) = start_saml(&console).await;
    let response = idp.response(&to_idp, "alice", &[]);
    let r = post_to_acs(&console, idp, &response, None).await;
    refused(&server, r, "no sign-on was started in this browser").await;
    // A cookie that names no pending sign-on is no better.
    let made_up = "A".repeat(43);
    let r = post_to_acs(&console, idp, &response, Some(&made_up)).await;
    refused(&server, r, "no pending sign-on for this browser").await;
    assert!(users_signed_in(&server).is_empty());
    // Nor does the sign-on cookie's value under the session cookie's name: it is looked up
    // as a session, which it is not.
    let r = console
        .client()
        .post(&response.acs)
        .header(ORIGIN, idp.base())
        .header(COOKIE, format!("{SESSION}={cookie}"))
        .form(&[("SAMLResponse", response.saml_response.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/console/login");
    assert!(new_session(&r).is_none());
    assert!(users_signed_in(&server).is_empty());
}

/// A server whose console signs in through the shared OpenID provider as `client_id`,
/// registered at the provider with the server's callback; `None` without the provider.
async fn oidc_server(client_id: &str) -> Option<(TestServer, &'static OidcPeer, String)> {
    let peer = OidcPeer::shared(AUDIENCE)?;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[auth.oidc]]\nissuer = \"{issuer}\"\naudience = \"{AUDIENCE}\"\nca_file = \"{ca}\"\n\
         provisioning = \"create\"\nadmin_claim = \"groups\"\nadmin_value = \"natterjack-admins\"\n\n\
         [console.oidc]\nissuer = \"{issuer}\"\nclient_id = \"{client_id}\"\n",
        issuer = peer.issuer(),
        ca = peer.ca_file().display(),
    );
    let server = TestServer::start_configured(dir, &toml, &[]).await;
    let callback = server.url("/console/oidc/callback");
    peer.register_client(client_id, &[&callback], None).await;
    Some((server, peer, callback))
}

/// Presses "Sign in with OpenID Connect" and signs `account` in at the provider: the
/// callback URL the provider sends the browser back to, and the sign-on cookie.
async fn oidc_sign_in(
    console: &Console<'_>,
    peer: &OidcPeer,
    callback: &str,
    account: &str,
) -> (reqwest::Url, String) {
    let r = console
        .form("/console/oidc/login", &[], &[])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = sign_on_cookie(&r);
    let authorize = leaving_for(r).await;
    assert!(authorize.starts_with(peer.issuer()), "{authorize}");
    let back = peer.sign_in(&authorize, account, callback).await;
    (back, cookie)
}

/// The browser following the provider's redirect to `callback` with the sign-on cookie.
async fn follow_callback(console: &Console<'_>, callback: &reqwest::Url, cookie: &str) -> Response {
    console
        .client()
        .get(callback.as_str())
        .header(COOKIE, format!("{SIGN_ON}={cookie}"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap()
}

fn with_state(callback: &reqwest::Url, state: &str) -> reqwest::Url {
    let mut forged = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                state.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    forged
}

#[tokio::test]
async fn an_openid_connect_sign_on_opens_a_console_session() {
    let Some((server, peer, callback)) = oidc_server("console-sessions-happy").await else {
        return;
    };
    let console = Console::of(&server);
    let login = console.page_anonymous("/console/login").await;
    assert!(login.contains("Sign in with OpenID Connect"), "{login}");
    let (back, cookie) = oidc_sign_in(&console, peer, &callback, "alice").await;
    let session = opened(follow_callback(&console, &back, &cookie).await, "alice").await;
    let page = console.page(&session, "/console/spaces").await;
    assert!(page.contains("<span class=\"user\">alice</span>"), "{page}");
    assert_eq!(
        users_signed_in(&server),
        [("alice".to_owned(), "oidc".to_owned())]
    );
    // The callback cannot be used twice: the pending sign-on was taken.
    let r = follow_callback(&console, &back, &cookie).await;
    refused(&server, r, "no pending sign-on for this browser").await;
}

#[tokio::test]
async fn an_openid_connect_callback_with_a_wrong_state_or_another_browsers_cookie_is_refused() {
    let Some((server, peer, callback)) = oidc_server("console-sessions-state").await else {
        return;
    };
    let console = Console::of(&server);
    let (back, cookie) = oidc_sign_in(&console, peer, &callback, "alice").await;
    let r = follow_callback(&console, &with_state(&back, "forged-state"), &cookie).await;
    refused(&server, r, "sign-on refused").await;
    // The pending sign-on went with the attempt: the genuine callback cannot follow it.
    let r = follow_callback(&console, &back, &cookie).await;
    refused(&server, r, "no pending sign-on for this browser").await;

    // Login CSRF: the attacker's own callback delivered to the victim's browser, which has
    // a sign-on of its own in progress.
    let (attackers, _) = oidc_sign_in(&console, peer, &callback, "alice").await;
    let r = console
        .form("/console/oidc/login", &[], &[])
        .send()
        .await
        .unwrap();
    let victims_cookie = sign_on_cookie(&r);
    let r = follow_callback(&console, &attackers, &victims_cookie).await;
    refused(&server, r, "sign-on refused").await;
    // And without any sign-on cookie.
    let (back, _) = oidc_sign_in(&console, peer, &callback, "alice").await;
    let r = console.client().get(back.as_str()).send().await.unwrap();
    refused(&server, r, "no sign-on was started in this browser").await;
    assert!(users_signed_in(&server).is_empty());
}
