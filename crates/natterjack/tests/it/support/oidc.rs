//! A real OpenID provider for the JWT bearer-token tests: `oidc-provider` (npm) served by
//! `crates/natterjack/tests/peers/oidc/server.mjs` on 127.0.0.1 over HTTPS with the given
//! certificate, issuer `https://127.0.0.1:PORT`. It issues RFC 9068 JWT access tokens
//! (`typ: at+jwt`) for one audience, signed RS256 or ES256 with keys it generates at start.
//! Its `/_test/` control endpoints let a test take tokens (through real grants against the
//! provider's own endpoints), rotate the keys, count discovery and JWKS fetches, and take
//! the provider down; see the header of `server.mjs`.
//!
//! Accounts: `alice` (`preferred_username` alice, no groups), `bob` (bob, in
//! `natterjack-admins`), `mallory` (who claims `preferred_username` alice). Clients:
//! [`SERVICE_CLIENT_ID`] (client credentials; its tokens carry `sub` = the client id and
//! `preferred_username` `svcreports`) and [`USER_CLIENT_ID`] (public, authorization code
//! with PKCE); a test registers its own web clients, with the redirect URIs it knows only at
//! run time, with [`OidcPeer::register_client`], and signs a user in through the provider's
//! login and consent pages with [`OidcPeer::sign_in`], as a browser would.
//!
//! node runs under the same guard as slapd: it exits when its stdin pipe closes, so it dies
//! with the test process. Without `node` or the peer's `node_modules` the tests say loudly
//! that they were skipped, except in CI (the `CI` environment variable is set).

use super::client_trusting;
use super::rsyslog::TlsFiles;
use super::slapd::{close_and_wait, dev_pki, find_program, guarded};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The audience (resource indicator) the shared provider issues access tokens for: what the
/// server under test must be configured to accept.
pub const AUDIENCE: &str = "https://natterjack.test";

/// The client whose client-credentials tokens [`OidcPeer::client_token`] returns.
pub const SERVICE_CLIENT_ID: &str = "svc-reports";

/// The public client of [`OidcPeer::user_token`]'s authorization code flow.
pub const USER_CLIENT_ID: &str = "natterjack-web";

/// The peer's directory (`server.mjs`, `package.json`, `node_modules`).
const PEER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/oidc");

/// How long node may take to print its `listening` line, and to exit when its stdin closes.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running OpenID provider; stopped when dropped.
pub struct OidcPeer {
    child: Child,
    issuer: String,
    audience: String,
    ca: PathBuf,
    /// Private work directory (its stderr).
    dir: PathBuf,
}

/// A peer spawned but not yet known to listen.
struct Starting {
    /// Taken by the [`OidcPeer`] once it listens.
    child: Option<Child>,
    listening: Receiver<String>,
    dir: PathBuf,
    ca: PathBuf,
    audience: String,
}

impl OidcPeer {
    /// Starts the provider in `dir/oidc` for `audience`, serving HTTPS with `tls` on a free
    /// port; returns once it listens. Returns `None` after printing `SKIPPED: {test}: ...`
    /// when node or the peer's `node_modules` is missing and `CI` is unset; panics in CI.
    pub async fn start(test: &str, dir: &Path, tls: &TlsFiles, audience: &str) -> Option<OidcPeer> {
        let mut starting = Starting::spawn(test, dir, tls, audience, None)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(peer) = starting.check(deadline) {
                return Some(peer);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The provider shared by the tests that only take tokens and read its metadata: one
    /// per audience, started on first use, once per test binary, in a temporary directory
    /// with its own development CA (removed when the test process ends). `None` (after a
    /// SKIPPED message) when node or `node_modules` is missing outside CI. Blocking, and its
    /// child belongs to no runtime, so it outlives the test that started it. Do not rotate
    /// its keys or take it down: start a private one for that.
    pub fn shared(audience: &str) -> Option<&'static OidcPeer> {
        static SHARED: OnceLock<Mutex<HashMap<String, Option<&'static OidcPeer>>>> =
            OnceLock::new();
        let mut peers = SHARED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *peers.entry(audience.to_owned()).or_insert_with(|| {
            let temp = tempfile::Builder::new()
                .prefix("natterjack-oidc-")
                .tempdir()
                .expect("temporary directory for the shared OpenID provider")
                .keep();
            let tls = dev_pki(&temp.join("pki"));
            let test = format!("shared OpenID provider for {audience}");
            let mut starting = Starting::spawn(&test, &temp, &tls, audience, Some(&temp))?;
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Some(peer) = starting.check(deadline) {
                    return Some(&*Box::leak(Box::new(peer)));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    }

    /// `https://127.0.0.1:PORT`: the issuer (`iss` of its tokens) and the base of its
    /// endpoints; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience its access tokens are for (`aud`).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The CA certificate that issued the provider's TLS certificate: what the server
    /// under test must trust to fetch discovery and JWKS.
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }

    /// node's stderr so far (oidc-provider's warnings and errors), for assertion messages.
    pub fn log(&self) -> String {
        let stderr = fs::read_to_string(self.dir.join("node.stderr")).unwrap_or_default();
        format!("--- OpenID provider stderr\n{stderr}")
    }

    /// A fresh access token of [`SERVICE_CLIENT_ID`] from a client-credentials grant, signed
    /// with `alg` (`"RS256"` or `"ES256"`), valid for an hour.
    pub async fn client_token(&self, alg: &str) -> String {
        self.token(&format!("/_test/token/client?alg={alg}")).await
    }

    /// Like [`client_token`](Self::client_token), expiring `ttl` after issue (whole seconds,
    /// at least one).
    pub async fn client_token_expiring(&self, alg: &str, ttl: Duration) -> String {
        let ttl = ttl.as_secs().max(1);
        self.token(&format!("/_test/token/client?alg={alg}&ttl={ttl}"))
            .await
    }

    /// A fresh access token of `account` (`alice`, `bob` or `mallory`) for
    /// [`USER_CLIENT_ID`], from the authorization code flow with PKCE (login and consent
    /// submitted by the peer itself), signed with `alg`, valid for an hour.
    pub async fn user_token(&self, account: &str, alg: &str) -> String {
        self.token(&format!("/_test/token/user?account={account}&alg={alg}"))
            .await
    }

    /// Like [`user_token`](Self::user_token), expiring `ttl` after issue (whole seconds, at
    /// least one).
    pub async fn user_token_expiring(&self, account: &str, alg: &str, ttl: Duration) -> String {
        let ttl = ttl.as_secs().max(1);
        self.token(&format!(
            "/_test/token/user?account={account}&alg={alg}&ttl={ttl}"
        ))
        .await
    }

    /// Replaces both signing keys with new ones under new kids; the old keys leave the JWKS
    /// (issuer and port stay). Returns the new kids.
    pub async fn rotate(&self) -> Vec<String> {
        let body = self.control("POST", "/_test/rotate").await;
        body["kids"]
            .as_array()
            .expect("kids")
            .iter()
            .map(|k| k.as_str().expect("kid").to_owned())
            .collect()
    }

    /// How many times the JWKS (`jwks_uri`) was served since start (requests refused while
    /// down are not counted).
    pub async fn jwks_fetches(&self) -> u64 {
        let body = self.control("GET", "/_test/jwks_fetches").await;
        body["count"].as_u64().expect("count")
    }

    /// How many times the discovery document was served since start (requests refused
    /// while down are not counted).
    pub async fn discovery_fetches(&self) -> u64 {
        let body = self.control("GET", "/_test/discovery_fetches").await;
        body["count"].as_u64().expect("count")
    }

    /// Takes the provider down: until [`up`](Self::up), every request outside `/_test/`
    /// has its TCP connection reset (after the TLS handshake), as if the issuer were
    /// unreachable.
    pub async fn down(&self) {
        self.control("POST", "/_test/down?mode=reset").await;
    }

    /// Takes the provider down the polite way: until [`up`](Self::up), every request
    /// outside `/_test/` gets `503 Service Unavailable`.
    pub async fn down_with_503(&self) {
        self.control("POST", "/_test/down?mode=503").await;
    }

    /// Brings the provider back after [`down`](Self::down).
    pub async fn up(&self) {
        self.control("POST", "/_test/up").await;
    }

    /// Registers (or replaces) the web client `client_id` for the authorization code flow
    /// with PKCE, allowed to return to exactly `redirect_uris`: public without `secret`,
    /// confidential (`client_secret_basic`) with it. Other clients are not disturbed.
    pub async fn register_client(
        &self,
        client_id: &str,
        redirect_uris: &[&str],
        secret: Option<&str>,
    ) {
        let mut url = reqwest::Url::parse(&format!("{}/_test/clients", self.issuer)).expect("URL");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("client_id", client_id);
            for uri in redirect_uris {
                query.append_pair("redirect_uri", uri);
            }
            if let Some(secret) = secret {
                query.append_pair("client_secret", secret);
            }
        }
        let query = url.query().unwrap_or_default();
        self.control("POST", &format!("/_test/clients?{query}"))
            .await;
    }

    /// Signs `account` in as a browser would: from `authorization_url` (a client's
    /// authorization request) through the provider's HTML login page (the form's `account`)
    /// and consent page, keeping the provider's cookies, until the provider redirects to
    /// `redirect_uri`; returns that redirect (with `code` and `state`, or `error`) without
    /// following it.
    pub async fn sign_in(
        &self,
        authorization_url: &str,
        account: &str,
        redirect_uri: &str,
    ) -> reqwest::Url {
        let client = client_trusting(&self.ca, |b| b.redirect(reqwest::redirect::Policy::none()));
        let mut cookies: HashMap<String, String> = HashMap::new();
        let mut url = reqwest::Url::parse(authorization_url).expect("authorization URL");
        let mut form: Option<Vec<(&str, &str)>> = None;
        for _ in 0..12 {
            let mut request = match &form {
                Some(fields) => client.post(url.clone()).form(fields),
                None => client.get(url.clone()),
            };
            if !cookies.is_empty() {
                let header: Vec<String> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
                request = request.header(reqwest::header::COOKIE, header.join("; "));
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}\n{}", self.log()));
            for line in response.headers().get_all(reqwest::header::SET_COOKIE) {
                let line = line.to_str().expect("Set-Cookie is text");
                let pair = line.split(';').next().unwrap_or_default();
                let (name, value) = pair.split_once('=').expect("Set-Cookie name=value");
                let expired = line
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
                if value.is_empty() || expired {
                    cookies.remove(name);
                } else {
                    cookies.insert(name.to_owned(), value.to_owned());
                }
            }
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers()[reqwest::header::LOCATION]
                    .to_str()
                    .expect("Location is text");
                let next = url.join(location).expect("Location is a URL");
                if next.as_str().starts_with(redirect_uri) {
                    return next;
                }
                url = next;
                form = None;
                continue;
            }
            let page = response.text().await.expect("page");
            assert_eq!(
                status,
                reqwest::StatusCode::OK,
                "{url}: {page}\n{}",
                self.log()
            );
            // The page's one form: its action, and the account when it asks for one.
            let action = page
                .split("action=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no form on {url}: {page}"));
            url = url.join(action).expect("form action");
            form = Some(if page.contains("name=\"account\"") {
                vec![("account", account)]
            } else {
                Vec::new()
            });
        }
        panic!(
            "{authorization_url}: no redirect to {redirect_uri}\n{}",
            self.log()
        );
    }

    async fn token(&self, path: &str) -> String {
        let body = self.control("POST", path).await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// One control request; panics unless it answers 200 with JSON. A fresh client each
    /// time: a shared peer outlives the runtime of any one test, and pooled connections
    /// would not.
    async fn control(&self, method: &str, path: &str) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = client_trusting(&self.ca, |b| b)
            .request(method, format!("{}{path}", self.issuer))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.log()));
        let status = response.status();
        let text = response.text().await.expect("control response");
        assert!(
            status.is_success(),
            "{path}: {status}: {text}\n{}",
            self.log()
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        close_and_wait(&mut self.child, STOP_TIMEOUT);
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            close_and_wait(&mut child, STOP_TIMEOUT);
        }
    }
}

impl Starting {
    /// Spawns `node server.mjs` under the guard, after checking for node and the peer's
    /// `node_modules` (`None` and a SKIPPED message when missing outside CI).
    fn spawn(
        test: &str,
        dir: &Path,
        tls: &TlsFiles,
        audience: &str,
        cleanup: Option<&Path>,
    ) -> Option<Starting> {
        let peer = Path::new(PEER_DIR);
        let Some(node) = find_program("node") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "node is required in CI (apt-get install nodejs npm)"
            );
            eprintln!("SKIPPED: {test}: node is not installed");
            return None;
        };
        if !peer
            .join("node_modules/oidc-provider/package.json")
            .is_file()
        {
            let command = format!("npm ci --prefix {}", peer.display());
            assert!(
                std::env::var_os("CI").is_none(),
                "the OpenID provider's packages are required in CI: run `{command}`"
            );
            eprintln!(
                "SKIPPED: {test}: the OpenID provider's packages are missing: run `{command}`"
            );
            return None;
        }
        let work = dir.join("oidc");
        fs::create_dir_all(&work).expect("create the OpenID provider's work directory");
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(work.join("node.stderr"))
            .expect("open node.stderr");
        let absolute = |p: &Path| {
            p.canonicalize()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut command = guarded(&node);
        command
            .arg(peer.join("server.mjs"))
            .current_dir(peer)
            .env("OIDC_TLS_CERT", absolute(&tls.cert))
            .env("OIDC_TLS_KEY", absolute(&tls.key))
            .env("OIDC_AUDIENCE", audience)
            .env("OIDC_PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        if let Some(cleanup) = cleanup {
            command.env("GUARD_CLEANUP", cleanup);
        }
        let mut child = command.spawn().expect("spawn node server.mjs");
        // The one line that matters, then the rest drained so node never blocks on a pipe.
        let stdout = child.stdout.take().expect("node stdout");
        let (tx, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        Some(Starting {
            child: Some(child),
            listening,
            dir: work,
            ca: absolute(&tls.ca),
            audience: audience.to_owned(),
        })
    }

    /// The running peer once it has printed its `listening` line; panics when node exits
    /// first or `deadline` passes.
    fn check(&mut self, deadline: Instant) -> Option<OidcPeer> {
        let stderr = || fs::read_to_string(self.dir.join("node.stderr")).unwrap_or_default();
        match self.listening.try_recv() {
            Ok(issuer) => {
                let child = self.child.take().expect("node was spawned");
                return Some(OidcPeer {
                    child,
                    issuer,
                    audience: self.audience.clone(),
                    ca: self.ca.clone(),
                    dir: self.dir.clone(),
                });
            }
            Err(TryRecvError::Disconnected) => {
                let mut child = self.child.take().expect("node was spawned");
                let status = child.wait().expect("wait for node");
                panic!(
                    "the OpenID provider exited at start with {status}\n{}",
                    stderr()
                );
            }
            Err(TryRecvError::Empty) => {}
        }
        if Instant::now() >= deadline {
            panic!(
                "the OpenID provider did not listen within {START_TIMEOUT:?}\n{}",
                stderr()
            );
        }
        None
    }
}
