//! An in-process server: the same assembly as `natterjack serve` (real TLS on port 0, a
//! fresh SQLite file), for tests that need an extra route or a look at internal counters.

use axum::Router;
use natterjack::config::Config;
use natterjack_api::AppState;
use std::net::IpAddr;
use std::path::PathBuf;

/// A server task inside the test process.
pub struct InProcessServer {
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// The data directory (holds `ca.pem`).
    pub data_dir: PathBuf,
    /// The server's shared state, for reading counters.
    pub state: AppState,
    _dir: tempfile::TempDir,
}

impl InProcessServer {
    /// Starts a server configured by `configure`, with routes extended by `extra_routes`.
    pub async fn start(
        configure: impl FnOnce(&mut Config),
        extra_routes: impl FnOnce(Router<AppState>) -> Router<AppState>,
    ) -> Self {
        Self::start_on(natterjack_core::clock::system(), configure, extra_routes).await
    }

    /// [`InProcessServer::start`] on `clock`, which the test moves instead of sleeping.
    pub async fn start_on(
        clock: natterjack_core::clock::SharedClock,
        configure: impl FnOnce(&mut Config),
        extra_routes: impl FnOnce(Router<AppState>) -> Router<AppState>,
    ) -> Self {
        super::install_crypto();
        let dir = tempfile::tempdir().expect("dir");
        let mut cfg = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        configure(&mut cfg);
        let assembled = natterjack::runtime::assemble_with_clock(&cfg, clock)
            .await
            .expect("assemble");
        let app = assembled.app(extra_routes);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(natterjack_api::transport::serve(
            listener,
            assembled.tls,
            app,
            assembled.transport,
            std::future::pending(),
        ));
        Self {
            base: format!("https://{addr}"),
            data_dir: cfg.data_dir,
            state: assembled.state,
            _dir: dir,
        }
    }

    /// A client trusting the development CA.
    pub fn client(&self) -> reqwest::Client {
        super::client_trusting(&self.data_dir.join("ca.pem"), |b| b)
    }

    /// A client whose connections come from `ip` (any 127.0.0.0/8 address works on Linux).
    pub fn client_from(&self, ip: IpAddr) -> reqwest::Client {
        super::client_trusting(&self.data_dir.join("ca.pem"), |b| b.local_address(ip))
    }

    /// A full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Argon2 computations the server has started so far.
    pub fn hashes(&self) -> u64 {
        self.state
            .service
            .authenticator()
            .hashing()
            .computations_started()
    }
}
