//! Redis for the shared rate-limit tests: the machine's server on 127.0.0.1:6379 with a key
//! prefix of each test's own, or a `redis-server` of a test's own that it can kill and
//! start again. Without them the tests say loudly that they were skipped, except in CI,
//! where they must run.

use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The shared server's URL.
pub fn url() -> String {
    std::env::var("NATTERJACK_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test uses.
pub fn fresh_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("natterjack-test:{test}:{nanos:x}:")
}

/// Whether `url` answers a PING.
pub async fn answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(Ok(mut connection)) = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .is_ok()
}

/// The shared server's URL, or `None` (a panic in CI) when it does not answer.
pub async fn shared(test: &str) -> Option<String> {
    let url = url();
    if answers(&url).await {
        return Some(url);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "Redis is required in CI ({url})"
    );
    eprintln!("SKIPPED: {test}: Redis not reachable at {url}");
    None
}

/// A `redis-server` of one test's own on a loopback port, without persistence.
pub struct OwnRedis {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one, or `None` (a panic in CI) when there is no `redis-server`.
    pub async fn start(test: &str) -> Option<Self> {
        if !super::installed(test, "redis-server", "--version") {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut redis = Self { port, child: None };
        redis.restart().await;
        Some(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// Starts the server again on the same port, empty, and waits until it answers.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !answers(&self.url()).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
