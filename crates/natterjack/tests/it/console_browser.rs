//! The console in a real browser: Debian's Chromium driven by Playwright (see
//! `support/browser.rs`), walking the pages through their forms only, as a person would,
//! with every page checked for the console's rules (no script, its CSP, a csrf input in
//! every POST form but the sign-in ones, its header, main and nav) and a screenshot of each
//! kept under `target/console-screenshots/<test>/`. The REST API, the audit trail or the CLI
//! then confirms what the clicks did. Single sign-on runs through the real test identity
//! providers: the SAML IdP (`support::saml_idp`) and the OpenID provider (`support::oidc`).
//!
//! Every server here serves the same development key (see [`console_server`]), so every
//! scenario pins the same key and the driver launches one Chromium for all of them.

mod cross_site;
mod pages;
mod sign_on;

use crate::support::browser::{self, BrowserReport, server_pin};
use crate::support::{Creds, PASSWORD, TestServer, cli};
use natterjack_core::audit::StoredAuditRecord;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;
use tempfile::TempDir;

/// The files of a development PKI (`natterjack::dev_ca`): what a server finds in its data
/// directory and serves instead of making its own.
const PKI_FILES: [&str; 4] = ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem"];

/// Writes the one development PKI of this test binary into `dir` (made once, kept in
/// memory). One server key for every test means one SPKI pin list, so one Chromium; a key
/// per server would cost a browser launch per test.
fn shared_pki_into(dir: &Path) {
    static FILES: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    let files = FILES.get_or_init(|| {
        let made = tempfile::tempdir().expect("a directory for the shared PKI");
        natterjack::dev_ca::ensure(made.path()).expect("the shared development PKI");
        PKI_FILES
            .iter()
            .map(|name| (*name, std::fs::read(made.path().join(name)).expect(name)))
            .collect()
    });
    natterjack::data_dir::ensure_data_dir(dir).expect("the PKI's directory");
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// A server in `dir` serving the shared key, with the TOML configuration `toml` (none when
/// empty) and `env`.
async fn console_server(dir: TempDir, toml: &str, env: &[(&str, &str)]) -> TestServer {
    shared_pki_into(&dir.path().join("data"));
    if toml.is_empty() {
        TestServer::start_in(dir, env).await
    } else {
        TestServer::start_configured(dir, toml, env).await
    }
}

/// A server with the defaults, serving the shared key.
async fn plain_server() -> TestServer {
    console_server(tempfile::tempdir().expect("temp dir"), "", &[]).await
}

/// `natterjack user add NAME` with [`PASSWORD`] on standard input, as an operator creates
/// an account.
fn add_user(server: &TestServer, name: &str) -> Creds {
    let (ok, _, stderr) = cli(
        &server.data_dir(),
        &["user", "add", name],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert!(ok, "user add {name}: {stderr}");
    Creds::new(name, PASSWORD)
}

/// `natterjack user admin NAME --grant`.
fn make_admin(server: &TestServer, name: &str) {
    let (ok, _, stderr) = cli(
        &server.data_dir(),
        &["user", "admin", name, "--grant"],
        "",
        &[],
    );
    assert!(ok, "user admin {name} --grant: {stderr}");
}

/// Runs `scenario` pinning `server`'s key (the shared one); `None` when the browser cannot
/// run here (the test is then skipped, loudly).
async fn run(
    test: &str,
    server: &TestServer,
    scenario: &str,
    params: Value,
) -> Option<BrowserReport> {
    browser::run(test, scenario, params, &[server_pin(server)]).await
}

/// The completion record of the request whose `x-request-id` a scenario returned as
/// `field`.
async fn completion_of(
    server: &TestServer,
    report: &BrowserReport,
    field: &str,
) -> StoredAuditRecord {
    let id = report.value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in the report\n{report}"));
    server.completion(id).await
}
