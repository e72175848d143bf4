//! The console's OpenID Connect login (authorization code flow with PKCE, `state` and
//! `nonce`) against the real `oidc-provider` (see `support::oidc`), signed in through the
//! provider's own login and consent pages as a browser would: alice and bob log in as the
//! accounts their bearer tokens map to, and every crossed, replayed or forged callback is
//! refused with its reason. Each test registers its own client at the shared provider, with
//! a redirect URI on a port known only when the test runs.

use crate::support::oidc::{AUDIENCE, OidcPeer};
use natterjack_core::auth::{Credential, IdentityProvider, LinkedAccounts};
use natterjack_core::principal::Principal;
use natterjack_federation::oidc::{
    BearerLogins, CodeFlow, ConsoleOidcSettings, IssuerSettings, LoginRefusal, PendingLogin,
};
use natterjack_storage::sealing::{KeyEncryptionKey, Keyring};
use natterjack_storage::sqlite::SqliteStore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::Arc;

/// The refusal of a code by the provider's token endpoint.
const INVALID_GRANT: LoginRefusal =
    LoginRefusal::CodeRefused("code refused by the issuer: invalid_grant");

/// A console logging in through the shared provider: its own accounts database, and its own
/// client, registered with the callback of a port this test holds.
struct Console {
    peer: &'static OidcPeer,
    logins: BearerLogins,
    flow: CodeFlow,
    redirect_uri: String,
    _dir: tempfile::TempDir,
    _port: TcpListener,
}

/// How a test's console is set up.
struct Setup<'a> {
    client_id: &'a str,
    /// `[[auth.oidc]] provisioning`.
    provisioning: &'a str,
    /// The secret the provider knows the client by (none: a public client).
    registered_secret: Option<&'a str>,
    /// The secret in the console's `client_secret_file`.
    configured_secret: Option<&'a str>,
}

impl<'a> Setup<'a> {
    fn public(client_id: &'a str) -> Self {
        Self {
            client_id,
            provisioning: "create",
            registered_secret: None,
            configured_secret: None,
        }
    }
}

impl Console {
    /// `None` (after a SKIPPED message) when the provider cannot run here outside CI.
    async fn start(setup: Setup<'_>) -> Option<Console> {
        let peer = OidcPeer::shared(AUDIENCE)?;
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap();
        let redirect_uri = format!(
            "https://127.0.0.1:{}/console/oidc/callback",
            port.local_addr().unwrap().port()
        );
        peer.register_client(setup.client_id, &[&redirect_uri], setup.registered_secret)
            .await;
        let db = dir.path().join("natterjack.db");
        let keyring = Arc::new(Keyring::new(KeyEncryptionKey::generate().unwrap()));
        SqliteStore::migrate(&db, &keyring).await.unwrap();
        let store = SqliteStore::open(&db, 2, keyring).await.unwrap();
        let issuers: Vec<IssuerSettings> = vec![
            serde_json::from_value(json!({
                "issuer": peer.issuer(),
                "audience": AUDIENCE,
                "ca_file": peer.ca_file(),
                "provisioning": setup.provisioning,
                "admin_claim": "groups",
                "admin_value": "natterjack-admins",
            }))
            .unwrap(),
        ];
        let logins = BearerLogins::start(
            &issuers,
            LinkedAccounts::new(Arc::new(store)),
            None,
            natterjack_core::clock::system(),
        )
        .await
        .unwrap();
        let secret_file = setup.configured_secret.map(|secret| {
            let path = dir.path().join("client-secret");
            std::fs::write(&path, format!("{secret}\n")).unwrap();
            path
        });
        let settings = ConsoleOidcSettings {
            issuer: peer.issuer().to_owned(),
            client_id: setup.client_id.to_owned(),
            client_secret_file: secret_file,
        };
        settings.check(&issuers).unwrap();
        let flow = logins.code_flow(&settings).unwrap();
        Some(Console {
            peer,
            logins,
            flow,
            redirect_uri,
            _dir: dir,
            _port: port,
        })
    }

    /// Another public client of the same provider and accounts, returning to the same
    /// callback.
    async fn other_client(&self, client_id: &str) -> CodeFlow {
        self.peer
            .register_client(client_id, &[&self.redirect_uri], None)
            .await;
        self.logins
            .code_flow(&ConsoleOidcSettings {
                issuer: self.peer.issuer().to_owned(),
                client_id: client_id.to_owned(),
                client_secret_file: None,
            })
            .unwrap()
    }

    async fn begin(&self) -> (String, PendingLogin) {
        let (url, pending) = self.flow.begin(&self.redirect_uri).await.unwrap();
        (url.to_string(), pending)
    }

    /// `account` signs in at the provider from `authorization_url`: the `state` and `code`
    /// of the callback.
    async fn sign_in(&self, authorization_url: &str, account: &str) -> (String, String) {
        let callback = self
            .peer
            .sign_in(authorization_url, account, &self.redirect_uri)
            .await;
        let query = |name: &str| {
            callback
                .query_pairs()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("no {name} in {callback}"))
        };
        assert_eq!(query("iss"), self.peer.issuer());
        (query("state"), query("code"))
    }

    async fn finish(
        &self,
        pending: PendingLogin,
        state: &str,
        code: &str,
    ) -> Result<Principal, LoginRefusal> {
        self.flow
            .finish(pending, state, code, &self.redirect_uri)
            .await
    }

    /// A full login of `account`.
    async fn log_in(&self, account: &str) -> Principal {
        let (url, pending) = self.begin().await;
        let (state, code) = self.sign_in(&url, account).await;
        self.finish(pending, &state, &code).await.unwrap()
    }

    /// The principal a bearer token of `account` (from the provider's own code flow) maps
    /// to.
    async fn bearer_principal(&self, account: &str) -> Principal {
        let token = self.peer.user_token(account, "RS256").await;
        self.logins
            .identify(
                &Credential::Bearer {
                    token: SecretString::from(token),
                },
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            )
            .await
            .expect("bearer tokens are handled")
            .unwrap()
    }
}

/// The stored form of `pending` with the fields `take` replaced by those of `other`: what
/// an attacker who could swap parts of two logins would hand back.
fn mixed(pending: &PendingLogin, other: &PendingLogin, take: &[&str]) -> PendingLogin {
    let mut stored: Value = serde_json::from_str(pending.to_stored().expose_secret()).unwrap();
    let other: Value = serde_json::from_str(other.to_stored().expose_secret()).unwrap();
    for field in take {
        stored[*field] = other[*field].clone();
    }
    PendingLogin::from_stored(&stored.to_string()).unwrap()
}

fn copy(pending: &PendingLogin) -> PendingLogin {
    PendingLogin::from_stored(pending.to_stored().expose_secret()).unwrap()
}

#[tokio::test]
async fn alice_logs_in_through_the_providers_pages_as_the_account_her_bearer_tokens_map_to() {
    let Some(console) = Console::start(Setup::public("console-alice")).await else {
        return;
    };
    let (url, pending) = console.begin().await;
    // The authorization request: PKCE S256, state and nonce; the verifier stays here.
    let url = reqwest::Url::parse(&url).unwrap();
    let param = |name: &str| {
        url.query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    assert!(url.as_str().starts_with(console.peer.issuer()));
    assert_eq!(param("response_type").as_deref(), Some("code"));
    assert_eq!(param("client_id").as_deref(), Some("console-alice"));
    assert_eq!(
        param("redirect_uri").as_deref(),
        Some(console.redirect_uri.as_str())
    );
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("code_challenge").map(|c| c.len()), Some(43));
    assert!(param("state").is_some_and(|s| s.len() >= 22));
    assert!(param("nonce").is_some_and(|n| n.len() >= 22));
    let stored = pending.to_stored();
    let verifier = serde_json::from_str::<Value>(stored.expose_secret()).unwrap()["code_verifier"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!url.as_str().contains(&verifier));
    assert!(!format!("{pending:?}").contains(&verifier));

    let (state, code) = console.sign_in(url.as_str(), "alice").await;
    let principal = console.finish(pending, &state, &code).await.unwrap();
    assert_eq!(principal.username().as_str(), "alice");
    assert!(principal.admin_access().is_none());
    // The same issuer and sub, the same account, whichever way alice comes.
    let bearer = console.bearer_principal("alice").await;
    assert_eq!(bearer.id(), principal.id());
    assert_eq!(console.log_in("alice").await.id(), principal.id());
}

#[tokio::test]
async fn bob_logs_in_as_an_admin_through_the_admin_group() {
    let Some(console) = Console::start(Setup::public("console-bob")).await else {
        return;
    };
    let principal = console.log_in("bob").await;
    assert_eq!(principal.username().as_str(), "bob");
    assert!(principal.admin_access().is_some());
    let bearer = console.bearer_principal("bob").await;
    assert_eq!(bearer.id(), principal.id());
    assert!(bearer.admin_access().is_some());
}

#[tokio::test]
async fn a_callback_whose_state_is_not_the_browsers_pending_one_is_refused_before_the_issuer_is_asked()
 {
    let Some(console) = Console::start(Setup::public("console-state")).await else {
        return;
    };
    let (url, pending) = console.begin().await;
    let (_, another_browsers) = console.begin().await;
    let (state, code) = console.sign_in(&url, "alice").await;
    // Login CSRF: alice's callback handed to another browser, whose pending login differs.
    assert_eq!(
        console
            .finish(another_browsers, &state, &code)
            .await
            .unwrap_err(),
        LoginRefusal::StateMismatch
    );
    // A forged or missing state.
    for forged in [
        "",
        "forged",
        &state[..state.len() - 1],
        &format!("{state}x"),
    ] {
        assert_eq!(
            console
                .finish(copy(&pending), forged, &code)
                .await
                .unwrap_err(),
            LoginRefusal::StateMismatch,
            "{forged:?}"
        );
    }
    // A callback at another redirect URI than the login began with.
    assert_eq!(
        console
            .flow
            .finish(
                copy(&pending),
                &state,
                &code,
                "https://127.0.0.1:1/console/oidc/callback"
            )
            .await
            .unwrap_err(),
        LoginRefusal::RedirectMismatch
    );
    // None of these reached the token endpoint: the code is still good for the real one.
    let principal = console.finish(pending, &state, &code).await.unwrap();
    assert_eq!(principal.username().as_str(), "alice");
}

#[tokio::test]
async fn a_code_redeemed_once_is_refused_the_second_time() {
    let Some(console) = Console::start(Setup::public("console-replay")).await else {
        return;
    };
    let (url, pending) = console.begin().await;
    let kept = copy(&pending);
    let (state, code) = console.sign_in(&url, "alice").await;
    console.finish(pending, &state, &code).await.unwrap();
    assert_eq!(
        console.finish(kept, &state, &code).await.unwrap_err(),
        INVALID_GRANT
    );
}

#[tokio::test]
async fn a_code_redeemed_with_another_logins_verifier_is_refused_and_a_missing_verifier_is_unreadable()
 {
    let Some(console) = Console::start(Setup::public("console-verifier")).await else {
        return;
    };
    let (url, pending) = console.begin().await;
    let (_, other) = console.begin().await;
    let (state, code) = console.sign_in(&url, "alice").await;
    let wrong_verifier = mixed(&pending, &other, &["code_verifier"]);
    assert_eq!(
        console
            .finish(wrong_verifier, &state, &code)
            .await
            .unwrap_err(),
        INVALID_GRANT
    );
    // A stored login without its verifier is never restored, so it cannot be sent.
    let mut stored: Value = serde_json::from_str(pending.to_stored().expose_secret()).unwrap();
    stored.as_object_mut().unwrap().remove("code_verifier");
    assert_eq!(
        PendingLogin::from_stored(&stored.to_string()).unwrap_err(),
        LoginRefusal::PendingUnreadable
    );
}

#[tokio::test]
async fn an_id_token_carrying_another_logins_nonce_is_refused() {
    let Some(console) = Console::start(Setup::public("console-nonce")).await else {
        return;
    };
    let (url, pending) = console.begin().await;
    let (_, other) = console.begin().await;
    let (state, code) = console.sign_in(&url, "alice").await;
    // The right state and verifier, so the provider hands over the ID token of this code,
    // whose nonce is not the one the console now expects.
    let other_nonce = mixed(&pending, &other, &["nonce"]);
    assert_eq!(
        console
            .finish(other_nonce, &state, &code)
            .await
            .unwrap_err(),
        LoginRefusal::NonceMismatch
    );
}

#[tokio::test]
async fn a_code_issued_to_another_client_is_refused() {
    let Some(console) = Console::start(Setup::public("console-mine")).await else {
        return;
    };
    let theirs = console.other_client("console-theirs").await;
    let (url, pending) = theirs.begin(&console.redirect_uri).await.unwrap();
    let (state, code) = console.sign_in(url.as_str(), "alice").await;
    // The code, state and verifier of the other client's login, redeemed as this client.
    assert_eq!(
        console.finish(pending, &state, &code).await.unwrap_err(),
        INVALID_GRANT
    );
}

#[tokio::test]
async fn a_confidential_client_logs_in_with_its_secret_and_not_with_a_wrong_one() {
    let Some(console) = Console::start(Setup {
        registered_secret: Some("console-secret-right"),
        configured_secret: Some("console-secret-right"),
        ..Setup::public("console-confidential")
    })
    .await
    else {
        return;
    };
    assert_eq!(console.log_in("alice").await.username().as_str(), "alice");

    let Some(wrong) = Console::start(Setup {
        registered_secret: Some("console-secret-right"),
        configured_secret: Some("console-secret-wrong"),
        ..Setup::public("console-confidential-wrong")
    })
    .await
    else {
        return;
    };
    let (url, pending) = wrong.begin().await;
    let (state, code) = wrong.sign_in(&url, "alice").await;
    let refused = wrong.finish(pending, &state, &code).await.unwrap_err();
    assert_eq!(
        refused,
        LoginRefusal::CodeRefused("code refused by the issuer: invalid_client")
    );
    assert!(!refused.reason().contains("secret-"));
}

#[tokio::test]
async fn an_identity_not_linked_to_an_account_is_refused_when_the_issuer_admits_only_linked_ones() {
    let Some(console) = Console::start(Setup {
        provisioning: "existing",
        ..Setup::public("console-existing")
    })
    .await
    else {
        return;
    };
    let (url, pending) = console.begin().await;
    let (state, code) = console.sign_in(&url, "alice").await;
    let refused = console.finish(pending, &state, &code).await.unwrap_err();
    assert_eq!(
        refused,
        LoginRefusal::Account("identity not linked to an account")
    );
    assert!(!refused.is_unavailable());
}
