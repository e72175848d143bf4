//! A real browser for the console tests: Debian's Chromium driven by Playwright
//! (`playwright-core` from npm) through `crates/natterjack/tests/peers/browser/driver.mjs`.
//!
//! One driver per test binary, started on first use: node launches Chromium once and then
//! runs scenarios (`tests/peers/browser/scenarios/*.mjs`) as commands, several at once, each
//! in a new browser context with cookies of its own, and answers with a [`BrowserReport`]:
//! whether the scenario passed, what the page logged as errors, the Content Security Policy
//! violations, the requests that failed, and the screenshots it wrote. Screenshots are test
//! artefacts under `target/console-screenshots/<test>/`.
//!
//! Chromium trusts no development CA: a scenario trusts exactly the servers whose keys it
//! is given ([`server_pin`], [`spki_pin`]), through Chromium's
//! `--ignore-certificate-errors-spki-list` (the driver launches one browser per distinct pin
//! list). Any other certificate is refused as it would be for a user.
//!
//! node reads its commands on stdin and exits when stdin closes, so it dies with the test
//! process (and Chromium with it). Without node, the peer's `node_modules` or Chromium the
//! tests say loudly that they were skipped, except in CI (the `CI` environment variable is
//! set), where they fail.

use super::TestServer;
use super::slapd::find_program;
use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// The peer's directory (`driver.mjs`, `scenarios/`, `package.json`, `node_modules`).
const PEER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/browser");

/// Debian's Chromium (package `chromium`); `NATTERJACK_TEST_CHROMIUM` names another.
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long node may take to launch Chromium and print its `ready` line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one scenario may run in the driver, and how long the test waits for its
/// answer (a little longer, so that the driver's own timeout is the one reported).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// How many lines of the driver's stderr are kept for failure messages.
const LOG_LINES: usize = 200;

/// What one scenario did in the browser: the driver's answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserReport {
    /// Whether the scenario ran to its end without throwing.
    pub ok: bool,
    /// Why it failed (message and stack), when it did.
    pub error: Option<String>,
    /// What the scenario returned (JSON), `null` when it failed.
    pub value: Value,
    /// The pages' console messages of type error and their uncaught exceptions, except
    /// those the scenario said it provoked.
    pub console_errors: Vec<String>,
    /// The console errors the scenario provoked on purpose (`expectConsoleError`).
    pub expected_console_errors: Vec<String>,
    /// The Content Security Policy violations Chromium reported (also console errors).
    pub csp_violations: Vec<String>,
    /// Requests that failed at the network level (a refused certificate, an abort).
    pub failed_requests: Vec<FailedRequest>,
    /// The screenshots written, in order (full-page PNGs).
    pub shots: Vec<PathBuf>,
    /// What the scenario noted on the way, for failure messages.
    pub notes: Vec<String>,
    /// The version of the Chromium that ran it.
    pub chromium: Option<String>,
    /// The driver's stderr when the answer came, for failure messages.
    #[serde(skip)]
    pub driver_log: String,
}

/// A request the browser could not complete.
#[derive(Debug, Deserialize)]
pub struct FailedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Chromium's error, such as `net::ERR_CERT_AUTHORITY_INVALID`.
    pub failure: String,
}

impl BrowserReport {
    /// Panics, with the whole report, unless the scenario passed.
    pub fn assert_ok(&self) -> &Self {
        assert!(self.ok, "the browser scenario failed\n{self}");
        self
    }

    /// Panics, with the whole report, unless the scenario passed without any console
    /// error, CSP violation or failed request.
    pub fn assert_clean(&self) -> &Self {
        self.assert_ok();
        assert!(
            self.console_errors.is_empty()
                && self.csp_violations.is_empty()
                && self.failed_requests.is_empty(),
            "the browser scenario passed, but not cleanly\n{self}"
        );
        self
    }
}

impl fmt::Display for BrowserReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chromium = self.chromium.as_deref().unwrap_or("not launched");
        writeln!(f, "ok: {} (Chromium {chromium})", self.ok)?;
        if let Some(error) = &self.error {
            writeln!(f, "error: {error}")?;
        }
        let lists: [(&str, Vec<String>); 5] = [
            ("console errors", self.console_errors.clone()),
            ("CSP violations", self.csp_violations.clone()),
            (
                "failed requests",
                self.failed_requests
                    .iter()
                    .map(|r| format!("{} {}: {}", r.method, r.url, r.failure))
                    .collect(),
            ),
            ("notes", self.notes.clone()),
            (
                "screenshots",
                self.shots.iter().map(|p| p.display().to_string()).collect(),
            ),
        ];
        for (name, items) in lists {
            if !items.is_empty() {
                writeln!(f, "{name}:")?;
                for item in items {
                    writeln!(f, "  {item}")?;
                }
            }
        }
        if !self.value.is_null() {
            writeln!(f, "value: {}", self.value)?;
        }
        if !self.driver_log.is_empty() {
            writeln!(
                f,
                "--- browser driver stderr (last lines)\n{}",
                self.driver_log
            )?;
        }
        Ok(())
    }
}

/// The pin of the certificate in `cert_pem` (its first certificate, the leaf): base64 of
/// the SHA-256 digest of its SubjectPublicKeyInfo, as `--ignore-certificate-errors-spki-list`
/// takes it.
pub fn spki_pin(cert_pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("a PEM certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("an X.509 certificate");
    let digest = Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The pin of the certificate `server` serves: the leaf its development CA issued
/// (`server.pem` in its data directory). A server given a certificate of the test's own
/// is pinned with [`spki_pin`] of that certificate instead.
pub fn server_pin(server: &TestServer) -> String {
    let path = server.data_dir().join("server.pem");
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (a server with a certificate of its own: pin it with spki_pin)",
            path.display()
        )
    });
    spki_pin(&pem)
}

/// Runs `scenario` (a file name under `tests/peers/browser/scenarios/` without `.mjs`, or an
/// absolute path) with `params` in a new browser context that trusts exactly the
/// certificates pinned in `spki_pins`; its screenshots go to [`screenshot_dir`]`(test)`.
/// Returns `None` after printing `SKIPPED: {test}: ...` when node, the peer's packages or
/// Chromium are missing and `CI` is unset; panics when they are missing in CI, or when the
/// driver dies. A scenario that fails is not a panic: see [`BrowserReport::assert_ok`].
pub async fn run(
    test: &str,
    scenario: &str,
    params: Value,
    spki_pins: &[String],
) -> Option<BrowserReport> {
    let driver = match DRIVER.get_or_init(Driver::start) {
        Ok(driver) => driver,
        Err(missing) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the browser tests must run in CI: {missing}"
            );
            eprintln!("SKIPPED: {test}: {missing}");
            return None;
        }
    };
    let shots = screenshot_dir(test);
    let command = json!({
        "scenario": scenario,
        "params": params,
        "pins": spki_pins,
        "shotDir": shots,
        "timeoutMs": SCENARIO_TIMEOUT.as_millis() as u64,
    });
    Some(driver.run(command).await)
}

/// `target/console-screenshots/<test>/` (`::` in the name becomes `.`), emptied the first
/// time this process uses it, so that it holds the screenshots of the latest run only.
pub fn screenshot_dir(test: &str) -> PathBuf {
    static CLEARED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let name: String = test
        .replace("::", ".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = target_dir().join("console-screenshots").join(name);
    let mut cleared = CLEARED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if cleared.insert(dir.clone()) {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("{}: {e}", dir.display()),
        }
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    dir
}

/// Cargo's target directory: the nearest directory above the test binary that holds
/// Cargo's `CACHEDIR.TAG`, else `CARGO_TARGET_DIR`, else `target` of the workspace.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    if let Some(dir) = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()) {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// The driver of this test binary, or why it cannot run here (something is not installed).
static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();

/// Answers waiting for their commands, by command id.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// The running `node driver.mjs`. Never stopped explicitly: it lives in a static for the
/// life of the test process, and exits when the process ends and its stdin closes.
struct Driver {
    stdin: Mutex<ChildStdin>,
    pending: Pending,
    next_id: AtomicU64,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Driver {
    /// Starts the driver and waits for Chromium to be up. `Err` (for a SKIPPED message)
    /// when node, the peer's packages or Chromium are missing; panics when they are there
    /// but the driver does not start.
    fn start() -> Result<Driver, String> {
        let peer = Path::new(PEER_DIR);
        let node = find_program("node").ok_or("node is not installed (apt-get install nodejs)")?;
        if !peer
            .join("node_modules/playwright-core/package.json")
            .is_file()
        {
            return Err(format!(
                "the browser driver's packages are missing: run `npm ci --prefix {}`",
                peer.display()
            ));
        }
        let chromium = std::env::var_os("NATTERJACK_TEST_CHROMIUM")
            .map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
        if !chromium.is_file() {
            return Err(format!(
                "{} is missing (apt-get install chromium)",
                chromium.display()
            ));
        }

        let mut child = Command::new(node)
            .arg(peer.join("driver.mjs"))
            .current_dir(peer)
            .env("BROWSER_CHROMIUM", &chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node driver.mjs");
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = child.stdout.take().expect("driver stdout");
        let stderr = child.stderr.take().expect("driver stderr");

        let log: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = kept.lock().unwrap_or_else(PoisonError::into_inner);
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });

        let pending: Pending = Arc::default();
        let answers = pending.clone();
        let (ready_tx, ready) = mpsc::channel();
        let exit_log = log.clone();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if message["ready"] == true {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(message["chromium"].as_str().map(str::to_owned));
                    }
                    continue;
                }
                let Some(id) = message["id"].as_u64() else {
                    continue;
                };
                let waiting = answers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                if let Some(tx) = waiting {
                    let _ = tx.send(Ok(message));
                }
            }
            // The driver is gone: every command still waiting fails with its last words
            // (a moment for its stderr to be read to the end).
            std::thread::sleep(Duration::from_millis(200));
            let why = format!("the browser driver exited\n{}", tail(&exit_log));
            for (_, tx) in answers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
            {
                let _ = tx.send(Err(why.clone()));
            }
        });

        match ready.recv_timeout(START_TIMEOUT) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait for the browser driver");
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "the browser driver exited at start with {status}\n{}",
                    tail(&log)
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!(
                    "the browser driver was not ready within {START_TIMEOUT:?}\n{}",
                    tail(&log)
                );
            }
        }
        // The child is not waited for: it exits when this process does.
        drop(child);
        Ok(Driver {
            stdin: Mutex::new(stdin),
            pending,
            next_id: AtomicU64::new(1),
            log,
        })
    }

    /// Sends `command` (with a fresh id) and waits for its report.
    async fn run(&self, mut command: Value) -> BrowserReport {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        command["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        {
            let mut stdin = self.stdin.lock().unwrap_or_else(PoisonError::into_inner);
            let line = format!("{command}\n");
            if let Err(e) = stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush())
            {
                panic!("the browser driver is gone ({e})\n{}", tail(&self.log));
            }
        }
        let answer = match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(Ok(answer))) => answer,
            Ok(Ok(Err(why))) => panic!("{why}"),
            Ok(Err(_)) => panic!(
                "the browser driver dropped the command\n{}",
                tail(&self.log)
            ),
            Err(_) => panic!(
                "the browser driver did not answer within {ANSWER_TIMEOUT:?}\n{}",
                tail(&self.log)
            ),
        };
        let mut report: BrowserReport = serde_json::from_value(answer.clone())
            .unwrap_or_else(|e| panic!("the browser driver's answer: {e}: {answer}"));
        report.driver_log = tail(&self.log);
        report
    }
}

/// The driver's stderr lines kept so far.
fn tail(log: &Mutex<VecDeque<String>>) -> String {
    let log = log.lock().unwrap_or_else(PoisonError::into_inner);
    log.iter().cloned().collect::<Vec<_>>().join("\n")
}
