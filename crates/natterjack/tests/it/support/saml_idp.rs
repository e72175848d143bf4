//! A real SAML 2.0 identity provider for the SAML tests: pysaml2's IdP, signing with Debian's
//! `xmlsec1`, served by `crates/natterjack/tests/peers/saml/idp.py` over plain HTTP on
//! 127.0.0.1 (its header documents the endpoints, users and knobs). Entity id
//! `http://127.0.0.1:PORT/metadata`; users `alice` (no groups), `bob` (in
//! `natterjack-admins`) and `bob.evil` (for the comment-in-NameID attack).
//!
//! This file is shared: the console tests use it as `support::saml_idp`, and the federation
//! crate's SAML tests include it by path, so it needs nothing but std and serde_json (a
//! blocking HTTP/1.0 client of its own). The IdP generates its keys at start and exits when
//! its stdin pipe closes, so it dies with the test process.
//!
//! Without python3, pysaml2 or xmlsec1 the tests say loudly that they were skipped, except in
//! CI (the `CI` environment variable is set), where they fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The IdP script, found from either crate's manifest directory (both are under `crates/`).
const IDP_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../natterjack/tests/peers/saml/idp.py"
);

/// How long the IdP may take to print its `listening` line (imports and two RSA keys).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of each request to the IdP.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How many lines of the IdP's stderr are kept for assertion messages.
const LOG_LINES: usize = 200;

/// A running IdP. The shared one lives until the test process ends.
pub struct SamlIdp {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Held for its stdin pipe: closing it (this process ending) stops the IdP.
    _child: Mutex<Child>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// A response the IdP made for an AuthnRequest, as its HTML form would post it.
#[derive(Debug, Clone)]
pub struct IdpResponse {
    /// The `SAMLResponse` form field (base64 of the response XML).
    pub saml_response: String,
    /// The `RelayState` form field (the request's, echoed).
    pub relay_state: String,
    /// Where the form posts: the request's AssertionConsumerServiceURL.
    pub acs: String,
    /// The ID of the AuthnRequest it answers (whatever `InResponseTo` says).
    pub request_id: String,
}

impl SamlIdp {
    /// The IdP shared by the tests of this binary: started on first use. `None` (after a
    /// SKIPPED message naming `test`) when python3, pysaml2 or xmlsec1 is missing outside CI;
    /// panics in CI. Blocking; its child belongs to no runtime.
    pub fn shared(test: &str) -> Option<&'static SamlIdp> {
        static SHARED: OnceLock<Result<SamlIdp, String>> = OnceLock::new();
        let idp = SHARED.get_or_init(|| {
            let python = program("python3")?;
            pysaml2(&python)?;
            program("xmlsec1")?;
            Ok(SamlIdp::spawn(&python))
        });
        match idp {
            Ok(idp) => Some(idp),
            Err(missing) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "the SAML IdP is required in CI: {missing}"
                );
                eprintln!("SKIPPED: {test}: {missing}");
                None
            }
        }
    }

    fn spawn(python: &Path) -> SamlIdp {
        let mut child = Command::new(python)
            .arg(IDP_SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {IDP_SCRIPT}: {e}", python.display()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let err = child.stderr.take().expect("IdP stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() >= LOG_LINES {
                    lines.remove(0);
                }
                lines.push(line);
            }
        });
        // The one line that matters, then the rest drained so the IdP never blocks on a pipe.
        let out = child.stdout.take().expect("IdP stdout");
        let (tx, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(base) = line.strip_prefix("listening ") {
                    let _ = tx.send(base.to_owned());
                }
            }
        });
        let log = |stderr: &Arc<Mutex<Vec<String>>>| {
            stderr.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
        };
        let base = match listening.recv_timeout(START_TIMEOUT) {
            Ok(base) => base,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the SAML IdP did not start ({e})\n{}", log(&stderr));
            }
        };
        SamlIdp {
            base,
            _child: Mutex::new(child),
            stderr,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The IdP's entity id: the `Issuer` of its responses.
    pub fn entity_id(&self) -> String {
        format!("{}/metadata", self.base)
    }

    /// The IdP's metadata (XML), as an operator would download it.
    pub fn metadata(&self) -> String {
        self.get("/metadata")
    }

    /// Writes the metadata to `path` (for `idp_metadata_file`).
    pub fn write_metadata(&self, path: &Path) {
        std::fs::write(path, self.metadata())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The page a browser gets at the SP's redirect URL `authn_url` (the IdP's SSO URL with
    /// `SAMLRequest` and `RelayState`): the form with "Continue" that posts the response.
    pub fn sso_page(&self, authn_url: &str) -> String {
        let path = authn_url
            .strip_prefix(&self.base)
            .unwrap_or_else(|| panic!("{authn_url} is not a URL of the IdP at {}", self.base));
        self.get(path)
    }

    /// The response `user` gets for the AuthnRequest in `authn_url` (the SP's redirect URL),
    /// with the IdP's knobs (`sign`, `key`, `audience`, `in_response_to`, `lifetime`; see
    /// `idp.py`).
    pub fn response(&self, authn_url: &str, user: &str, knobs: &[(&str, &str)]) -> IdpResponse {
        let (_, query) = authn_url
            .split_once('?')
            .unwrap_or_else(|| panic!("{authn_url} carries no SAMLRequest"));
        let mut path = format!("/_test/response?{query}&user={}", encode(user));
        for (name, value) in knobs {
            path.push_str(&format!("&{}={}", encode(name), encode(value)));
        }
        let body = self.get(&path);
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        let field = |name: &str| {
            json[name]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: no {name} in {body}"))
                .to_owned()
        };
        IdpResponse {
            saml_response: field("SAMLResponse"),
            relay_state: field("RelayState"),
            acs: field("acs"),
            request_id: field("request_id"),
        }
    }

    /// The IdP's stderr so far (its request log and tracebacks), for assertion messages.
    pub fn log(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        format!("--- SAML IdP stderr\n{}", lines.join("\n"))
    }

    /// One GET; panics unless it answers 200.
    fn get(&self, path: &str) -> String {
        let address = self
            .base
            .strip_prefix("http://")
            .expect("the IdP serves plain HTTP");
        let mut stream = TcpStream::connect(address)
            .unwrap_or_else(|e| panic!("connect to the SAML IdP: {e}\n{}", self.log()));
        stream.set_read_timeout(Some(REQUEST_TIMEOUT)).ok();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .expect("send the request to the SAML IdP");
        let mut raw = String::new();
        stream
            .read_to_string(&mut raw)
            .unwrap_or_else(|e| panic!("read the SAML IdP's answer: {e}\n{}", self.log()));
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split_whitespace().nth(1).unwrap_or("");
        assert_eq!(status, "200", "GET {path}: {head}\n{body}\n{}", self.log());
        body.to_owned()
    }
}

/// Percent-encodes a query value (all but the unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `program` on the `PATH`, or why not.
fn program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed"))
}

/// Whether `python` has pysaml2, or why not.
fn pysaml2(python: &Path) -> Result<(), String> {
    let found = Command::new(python)
        .args(["-c", "import saml2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Ok(())
    } else {
        Err("pysaml2 is not installed (python3 -m pip install pysaml2)".into())
    }
}
