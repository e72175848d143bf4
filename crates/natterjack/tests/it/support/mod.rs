//! Test support: start the real `natterjack` binary on port 0 with a fresh data directory,
//! and talk to it over real TLS with reqwest, trusting only the generated development CA.

pub mod browser;
pub mod certs;
pub mod console;
pub mod grpc_client;
pub mod haproxy;
pub mod in_process;
pub mod nodes;
pub mod oidc;
pub mod pg;
pub mod proxy;
pub mod quota;
pub mod raw;
pub mod redis;
pub mod rsyslog;
pub mod saml_idp;
pub mod slapd;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Free ports for the gRPC and internal listeners, so that tests running at once never
/// collide on their default ports (the REST port is set where each test starts `serve`).
pub const SIDE_LISTENERS_ON_FREE_PORTS: [(&str, &str); 2] = [
    ("NATTERJACK_GRPC__LISTEN", "127.0.0.1:0"),
    ("NATTERJACK_INTERNAL__LISTEN", "127.0.0.1:0"),
];

/// A password that passes the password policy.
pub const PASSWORD: &str = "violet-anvil-73-harbour";

/// The path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_natterjack")
}

/// Installs the process-wide rustls provider for reqwest (once; later calls are no-ops).
pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A running server process, killed when dropped.
pub struct TestServer {
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// `https://127.0.0.1:PORT` of the public gRPC listener, when enabled.
    pub grpc: Option<String>,
    /// `http://127.0.0.1:PORT` of the internal (metrics) listener, when enabled.
    pub internal: Option<String>,
    /// The Admin service's Unix socket, when the internal listeners are enabled.
    pub admin_socket: Option<PathBuf>,
    /// The data directory.
    pub dir: tempfile::TempDir,
    child: Child,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts a server with the embedded defaults.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra `NATTERJACK_*` environment variables.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, env).await
    }

    /// Starts a server on an existing data directory.
    pub async fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Self {
        Self::launch(dir, None, env).await
    }

    /// Starts a server on an existing data directory with a TOML configuration file (for
    /// settings the environment cannot express, such as arrays of tables).
    pub async fn start_configured(
        dir: tempfile::TempDir,
        toml: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let path = dir.path().join("natterjack.toml");
        std::fs::write(&path, toml).expect("write the configuration");
        Self::launch(dir, Some(path), env).await
    }

    async fn launch(dir: tempfile::TempDir, config: Option<PathBuf>, env: &[(&str, &str)]) -> Self {
        install_crypto();
        let mut command = Command::new(binary());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command
            .arg("serve")
            .env("NATTERJACK_DATA_DIR", dir.path().join("data"))
            .env("NATTERJACK_REST__LISTEN", "127.0.0.1:0")
            .envs(SIDE_LISTENERS_ON_FREE_PORTS)
            .env("RUST_LOG", "warn")
            // Tests of other controls send bursts from one address; the rate-limit tests
            // switch it back on with their own quotas.
            .env("NATTERJACK_RATE_LIMIT__ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn natterjack");
        // The server's log, kept for tests that read it and passed on to the test's stderr.
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut log = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let logged = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = log.next_line().await {
                eprintln!("{line}");
                logged.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut grpc, mut internal, mut admin_socket) = (None, None, None);
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("natterjack listening grpc ") {
                    grpc = Some(url.to_owned());
                }
                if let Some(url) = line.strip_prefix("natterjack listening internal ") {
                    internal = Some(url.to_owned());
                }
                if let Some(path) = line.strip_prefix("natterjack listening admin unix:") {
                    admin_socket = Some(PathBuf::from(path));
                }
                if let Some(url) = line.strip_prefix("natterjack listening rest ") {
                    return url.to_owned();
                }
            }
            panic!("server exited before listening");
        })
        .await
        .expect("server did not start within 60 s");
        // Keep draining stdout so the server never blocks on a full pipe, keeping the lines.
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        Self {
            base,
            grpc,
            internal,
            admin_socket,
            dir,
            child,
            stdout,
            stderr,
        }
    }

    /// Every record of the server's audit table, oldest first, read through the storage
    /// crate as `natterjack audit verify` reads it.
    pub async fn audit_records(&self) -> Vec<natterjack_core::audit::StoredAuditRecord> {
        audit_records_in(&self.data_dir()).await
    }

    /// The completion record of `request_id` once it is committed (completions are queued
    /// as the response leaves, so they may land a moment after it).
    pub async fn completion(&self, request_id: &str) -> natterjack_core::audit::StoredAuditRecord {
        for _ in 0..250 {
            if let Some(record) = self.audit_records().await.into_iter().find(|r| {
                r.record.request_id == request_id
                    && r.record.phase == natterjack_core::audit::Phase::Complete
            }) {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no completion record for {request_id}");
    }

    /// The Prometheus text of the internal listener's `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let internal = self.internal.clone().expect("internal listener");
        reqwest::get(format!("{internal}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// A gRPC channel to the Admin service, over its Unix socket.
    pub async fn admin_channel(&self) -> tonic::transport::Channel {
        let path = self.admin_socket.clone().expect("admin socket");
        tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .expect("connect to the admin socket")
    }

    /// What the server printed on standard output after it started listening.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Whether the server's log gets a line containing `text` within 10 s: the log is read
    /// by a task of its own, so a line written just before `listening` may not be read yet.
    pub async fn logs_eventually(&self, text: &str) -> bool {
        for _ in 0..100 {
            if self.stderr_lines().iter().any(|l| l.contains(text)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// What the server logged on standard error so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The data directory the server uses.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `host:port` of the listener.
    pub fn authority(&self) -> &str {
        self.base.trim_start_matches("https://")
    }

    /// A client that trusts the development CA and nothing else.
    pub fn client(&self) -> Client {
        client_trusting(&self.data_dir().join("ca.pem"), |b| b)
    }

    /// A full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers `name` with [`PASSWORD`] and returns its credentials.
    pub async fn user(&self, name: &str) -> Creds {
        let r = self
            .client()
            .post(self.url("/users"))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), StatusCode::CREATED, "registering {name}");
        Creds {
            name: name.to_owned(),
            password: PASSWORD.to_owned(),
        }
    }

    /// Sends a request as `who` (anonymous when `None`) with an optional JSON body.
    pub async fn call(
        &self,
        who: Option<&Creds>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.client().request(method, self.url(path));
        if let Some(c) = who {
            req = req.basic_auth(&c.name, Some(&c.password));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    /// Creates a space as `who` and returns its id.
    pub async fn space(&self, who: &Creds, name: &str) -> i64 {
        let r = self
            .call(
                Some(who),
                Method::POST,
                "/spaces",
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.expect("json")["id"]
            .as_i64()
            .expect("id")
    }

    /// Posts a message as `who` and returns its id.
    pub async fn message(&self, who: &Creds, space: i64, text: &str) -> i64 {
        let r = self
            .call(
                Some(who),
                Method::POST,
                &format!("/spaces/{space}/messages"),
                Some(json!({"message": text})),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.expect("json")["id"]
            .as_i64()
            .expect("id")
    }

    /// Grants `permissions` on `space` to `to`, as `by`; returns the status.
    pub async fn grant(&self, by: &Creds, space: i64, to: &str, permissions: &str) -> StatusCode {
        self.call(
            Some(by),
            Method::POST,
            &format!("/spaces/{space}/members"),
            Some(json!({"username": to, "permissions": permissions})),
        )
        .await
        .status()
    }

    /// Sends the server SIGHUP, as an operator's `kill -HUP` does.
    pub fn hang_up(&self) {
        let pid = self.child.id().expect("the server is running");
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP {pid}");
    }

    /// The server's process id (what its syslog messages carry as PROCID).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// Sends the server SIGTERM, as an orchestrator does to begin a graceful shutdown.
    pub fn terminate(&self) {
        let pid = self.pid();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// The server's exit status, once it has exited by itself within `within`.
    pub async fn exited_within(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the server did not exit within {within:?}"))
            .expect("wait for the server")
    }

    /// Stops the server (SIGKILL) and hands back its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill().await;
        self.dir
    }
}

/// Every record of the audit table of the SQLite database in `data_dir` (with its
/// key-encryption key), oldest first: what [`TestServer::audit_records`] reads, for a server
/// that is gone or that uses another server's file.
pub async fn audit_records_in(data_dir: &Path) -> Vec<natterjack_core::audit::StoredAuditRecord> {
    use natterjack_core::audit::AuditStore;
    let store = open_store_in(data_dir).await;
    let mut all: Vec<natterjack_core::audit::StoredAuditRecord> = Vec::new();
    loop {
        let after = all.last().map_or(0, |r| r.id);
        let page = store.audit_in_order(after, 1000).await.expect("read");
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    store.close().await;
    all
}

/// The id of the newest record the export sink `sink` has confirmed, as saved in the
/// database (0 while it has confirmed nothing).
pub async fn export_cursor_in(data_dir: &Path, sink: &str) -> i64 {
    use natterjack_core::audit::AuditStore;
    let store = open_store_in(data_dir).await;
    let cursor = store
        .export_cursor(sink)
        .await
        .expect("read the export cursor");
    store.close().await;
    cursor
}

/// The server's SQLite database opened beside it, with the server's own key.
async fn open_store_in(data_dir: &Path) -> natterjack_storage::sqlite::SqliteStore {
    let kek = natterjack::encryption_key::from_file(&data_dir.join("encryption.key"), &[])
        .expect("the server's key-encryption key");
    natterjack_storage::sqlite::SqliteStore::open(
        &data_dir.join("natterjack.db"),
        1,
        std::sync::Arc::new(natterjack_storage::sealing::Keyring::new(kek)),
    )
    .await
    .expect("open the server's database")
}

/// A client trusting exactly the CA in `ca_file`, further configured by `tweak`.
pub fn client_trusting(
    ca_file: &Path,
    tweak: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Client {
    install_crypto();
    let pem = std::fs::read(ca_file).expect("read ca.pem");
    let ca = reqwest::Certificate::from_pem(&pem).expect("parse ca.pem");
    tweak(
        Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(30)),
    )
    .build()
    .expect("client")
}

/// `env` (owned values, as a test builds them) as the pairs [`TestServer::start_with`] and
/// [`cli`] take.
pub fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Whether the peer `program` is installed (`program version_flag` succeeds). Without it a
/// test says loudly that it was skipped, except in CI, where it must run: then this panics.
pub fn installed(test: &str, program: &str, version_flag: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is required in CI"
        );
        eprintln!("SKIPPED: {test}: no {program}");
    }
    found
}

/// Username and password of a test user.
#[derive(Clone, Debug)]
pub struct Creds {
    /// Username.
    pub name: String,
    /// Password.
    pub password: String,
}

impl Creds {
    /// Credentials with an arbitrary password.
    pub fn new(name: &str, password: &str) -> Self {
        Self {
            name: name.to_owned(),
            password: password.to_owned(),
        }
    }
}

/// The JSON body of a response that must be an RFC 9457 problem; checks the media type.
pub async fn problem(r: Response) -> Value {
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json", "status {}", r.status());
    r.json().await.expect("problem json")
}

/// Runs the CLI with `args` against `data_dir`, feeding `stdin`; returns (success, stdout, stderr).
pub fn cli(
    data_dir: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    use std::io::Write;
    let mut command = std::process::Command::new(binary());
    command
        .args(args)
        .env("NATTERJACK_DATA_DIR", data_dir)
        .envs(SIDE_LISTENERS_ON_FREE_PORTS)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn cli");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("cli output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
