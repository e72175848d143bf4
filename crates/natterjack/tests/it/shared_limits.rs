//! Rate limits shared through Redis: several server processes enforce one quota, and when
//! Redis dies each policy fails open to the node's own budgets or closed (503), the change
//! is audited and counted, and the budgets are shared again once Redis is back.

use crate::support::quota::{Quota, holds_at_three_times};
use crate::support::redis::{OwnRedis, fresh_prefix, shared};
use crate::support::{TestServer, cli, client_trusting, pairs};
use natterjack::shared_limits::RedisBuckets;
use natterjack_core::rate::shared::{Answer, Op, SharedBuckets, SharedCheck};
use reqwest::StatusCode;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A check of `burst` requests refilling at `per_second`, as the server computes it.
fn check(key: &str, burst: u64, per_second: f64) -> SharedCheck {
    let interval = (1e9 / per_second) as u64;
    SharedCheck {
        key: key.to_owned(),
        interval_nanos: interval,
        tolerance_nanos: interval * (burst - 1),
    }
}

#[tokio::test]
async fn a_decision_in_redis_takes_from_every_bucket_or_from_none_and_a_give_back_returns_it() {
    let Some(url) = shared("shared_limits::script").await else {
        return;
    };
    let prefix = fresh_prefix("script");
    let store = RedisBuckets::connect(&url, None, &prefix, Duration::from_secs(2)).unwrap();
    let wide = check("per-ip:192.0.2.1", 10, 0.001);
    let narrow = check("credentials:192.0.2.1", 1, 0.001);
    let both = [wide.clone(), narrow.clone()];
    assert_eq!(
        store.decide(Op::Take, &both).await.unwrap(),
        Answer::Allowed
    );
    let Answer::Refused { index, retry_after } = store.decide(Op::Take, &both).await.unwrap()
    else {
        panic!("the narrow bucket is spent");
    };
    assert_eq!(index, 1, "the second bucket refused");
    assert!(retry_after > Duration::from_secs(900), "{retry_after:?}");
    // The refused decision took nothing from the first bucket: 9 of its 10 are left.
    for _ in 0..9 {
        assert_eq!(
            store
                .decide(Op::Take, std::slice::from_ref(&wide))
                .await
                .unwrap(),
            Answer::Allowed
        );
    }
    assert!(matches!(
        store.decide(Op::Peek, std::slice::from_ref(&wide)).await,
        Ok(Answer::Refused { index: 0, .. })
    ));
    store
        .decide(Op::GiveBack, std::slice::from_ref(&narrow))
        .await
        .unwrap();
    assert_eq!(
        store
            .decide(Op::Peek, std::slice::from_ref(&narrow))
            .await
            .unwrap(),
        Answer::Allowed,
        "the give-back returned the narrow bucket's request"
    );
}

/// The environment of a node whose per-address quota is `burst` then `per_second`, kept in
/// Redis at `url` under `prefix`.
fn node_env(url: &str, prefix: &str, burst: u32, per_second: f64) -> Vec<(&'static str, String)> {
    vec![
        ("NATTERJACK_RATE_LIMIT__ENABLED", "true".to_owned()),
        ("NATTERJACK_RATE_LIMIT__REDIS_URL", url.to_owned()),
        ("NATTERJACK_RATE_LIMIT__REDIS_KEY_PREFIX", prefix.to_owned()),
        ("NATTERJACK_RATE_LIMIT__REDIS_RETRY_MS", "200".to_owned()),
        ("NATTERJACK_RATE_LIMIT__PER_IP__BURST", burst.to_string()),
        (
            "NATTERJACK_RATE_LIMIT__PER_IP__PER_SECOND",
            per_second.to_string(),
        ),
    ]
}

async fn start_node(env: &[(&'static str, String)]) -> TestServer {
    TestServer::start_with(&pairs(env)).await
}

#[tokio::test]
async fn three_nodes_sharing_redis_admit_one_quota_to_a_client_at_three_times_its_rate() {
    let Some(url) = shared("shared_limits::three_nodes").await else {
        return;
    };
    const BURST: u32 = 10;
    const RATE: f64 = 20.0;
    const SECONDS: f64 = 6.0;
    let env = node_env(&url, &fresh_prefix("three-nodes"), BURST, RATE);
    let nodes = [
        start_node(&env).await,
        start_node(&env).await,
        start_node(&env).await,
    ];
    let clients: Vec<_> = nodes.iter().map(TestServer::client).collect();
    // One client address, three times its quota, spread evenly over the three nodes as a
    // round-robin balancer would.
    let quota = Quota {
        burst: BURST,
        rate: RATE,
    };
    holds_at_three_times("three nodes", quota, SECONDS, |n| {
        let (client, node) = (&clients[n % 3], &nodes[n % 3]);
        async move {
            client
                .get(node.url("/health"))
                .send()
                .await
                .unwrap()
                .status()
        }
    })
    .await;
}

#[tokio::test]
async fn when_redis_dies_credentials_fail_closed_the_rest_falls_back_and_both_recover_with_redis() {
    let Some(mut redis) = OwnRedis::start("shared_limits::outage").await else {
        return;
    };
    let env = node_env(&redis.url(), "nj:", 5, 0.01);
    let server = start_node(&env).await;
    let client = server.client();
    let health = || client.get(server.url("/health")).send();
    let with_credentials = || {
        client
            .get(server.url("/spaces"))
            .basic_auth("nobody", Some("not a password"))
            .send()
    };
    // Up: the shared budget of five is spent by five requests.
    for _ in 0..5 {
        assert_eq!(health().await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(
        health().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // Redis dies while another client (another address, so another budget) keeps calling.
    let load = {
        let client = client_trusting(&server.data_dir().join("ca.pem"), |b| {
            b.local_address(IpAddr::from([127, 0, 0, 2]))
        });
        let url = server.url("/health");
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..200 {
                statuses.push(client.get(&url).send().await.map(|r| r.status().as_u16()));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            statuses
        })
    };
    redis.kill().await;
    // The first decision after the crash finds Redis gone; from then on `per_ip` (fails
    // open) uses this node's own budget, which nothing has spent yet...
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(health().await.unwrap().status());
    }
    assert!(
        statuses.iter().skip(1).any(|s| *s == StatusCode::OK),
        "per_ip fell back to the node's own budget: {statuses:?}"
    );
    // ...and `credentials` (fails closed by default) refuses with 503 and Retry-After.
    let refused = with_credentials().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let problem = crate::support::problem(refused).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("rate limiting is unavailable for `credentials`"),
        "{problem}"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("natterjack_rate_limit_store_up 0"),
        "{metrics}"
    );

    // Redis comes back (empty): the probe finds it and the budgets are shared again.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .metrics()
        .await
        .contains("natterjack_rate_limit_store_up 1")
    {
        assert!(Instant::now() < deadline, "no recovery within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        with_credentials().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "credentials are checked again"
    );
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200 | 429))),
        "the load saw only answers of its quota, never an error: {statuses:?}"
    );

    // Both changes are in the audit trail (queued as they happen, committed a moment
    // later), and the chain still verifies.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts: Vec<String> = server
            .audit_records()
            .await
            .into_iter()
            .map(|r| r.record.operation)
            .filter(|op| op.starts_with("alert rate_limit_store"))
            .collect();
        if alerts.len() >= 2 || Instant::now() > deadline {
            assert_eq!(
                alerts,
                ["alert rate_limit_store_down", "alert rate_limit_store_up"]
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = server.stop().await;
    let (ok, out, err) = cli(&dir.path().join("data"), &["audit", "verify"], "", &[]);
    assert!(ok, "{out}{err}");
}

#[tokio::test]
async fn an_attack_spread_over_three_nodes_raises_one_alert_per_window_from_the_shared_windows() {
    let Some(url) = shared("shared_limits::windows").await else {
        return;
    };
    let prefix = fresh_prefix("windows");
    let env: Vec<(&str, &str)> = vec![
        ("NATTERJACK_RATE_LIMIT__REDIS_URL", &url),
        ("NATTERJACK_RATE_LIMIT__REDIS_KEY_PREFIX", &prefix),
        ("NATTERJACK_AUDIT__ALERTS__UNAUTHENTICATED", "6"),
        ("NATTERJACK_AUDIT__ALERTS__DISTRIBUTED_ADDRESSES", "3"),
    ];
    let nodes = [
        TestServer::start_with(&env).await,
        TestServer::start_with(&env).await,
        TestServer::start_with(&env).await,
    ];
    // Two wrong passwords for alice on each node, each node from an address of its own:
    // no node alone sees more than two failures or one address.
    for (i, node) in nodes.iter().enumerate() {
        let from = IpAddr::from([127, 0, 0, 11 + u8::try_from(i).unwrap()]);
        let client = client_trusting(&node.data_dir().join("ca.pem"), |b| b.local_address(from));
        for _ in 0..2 {
            let r = client
                .get(node.url("/spaces"))
                .basic_auth("alice", Some("not her password"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
    }
    // Every node's alerts, once the queued ones are committed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alerts = loop {
        let mut alerts = Vec::new();
        for node in &nodes {
            alerts.extend(
                node.audit_records()
                    .await
                    .into_iter()
                    .filter(|r| r.record.operation.starts_with("alert "))
                    .map(|r| (r.record.operation, r.record.target, r.record.reason)),
            );
        }
        if alerts.len() >= 2 || Instant::now() > deadline {
            break alerts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut kinds: Vec<(&str, &str)> = alerts
        .iter()
        .map(|(op, target, _)| (op.as_str(), target.as_str()))
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            ("alert distributed_guessing", "principal=alice"),
            ("alert unauthenticated", "principal=alice"),
        ],
        "one alert of each kind across the three nodes, none per address: {alerts:?}"
    );
    let evidence = alerts
        .iter()
        .find(|(op, _, _)| op == "alert unauthenticated")
        .and_then(|(_, _, reason)| reason.clone())
        .unwrap();
    assert!(
        evidence.starts_with("6 unauthenticated refusals within 60 s on every node"),
        "{evidence}"
    );
}

/// A `redis-server` of the test's own that speaks only TLS, with a password, its
/// certificate from `ca`; killed when dropped.
struct TlsRedis {
    port: u16,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    async fn start(test: &str, ca: &crate::support::certs::TestCa) -> Option<Self> {
        // Needs redis-server, as the outage test does.
        OwnRedis::start(test).await?;
        let dir = tempfile::tempdir().unwrap();
        let leaf = ca.server("redis");
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (cert, key, ca_file) = (
            file("redis.pem", &leaf.cert_pem),
            file("redis-key.pem", &leaf.key_pem),
            file("ca.pem", &ca.pem),
        );
        let port = crate::support::haproxy::free_port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
            .args(["--tls-ca-cert-file", &ca_file, "--tls-auth-clients", "no"])
            .args(["--requirepass", "redis-secret-9"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(Self {
            port,
            _child: child,
            _dir: dir,
        })
    }
}

/// Whether `server` says its rate-limit store answers, once it has decided something.
async fn store_up(server: &TestServer) -> bool {
    let client = server.client();
    let _ = client.get(server.url("/health")).send().await.unwrap();
    server
        .metrics()
        .await
        .contains("natterjack_rate_limit_store_up 1")
}

#[tokio::test]
async fn redis_over_tls_with_a_password_is_trusted_only_through_its_ca_file_and_the_password() {
    let ca = crate::support::certs::TestCa::new("redis");
    let Some(redis) = TlsRedis::start("shared_limits::tls", &ca).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let right_ca = dir.path().join("redis-ca.pem");
    std::fs::write(&right_ca, &ca.pem).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, crate::support::certs::TestCa::new("other").pem).unwrap();
    let start = |url: String, ca_file: &std::path::Path| {
        let ca_file = ca_file.display().to_string();
        async move {
            let env = [
                ("NATTERJACK_RATE_LIMIT__ENABLED", "true".to_owned()),
                ("NATTERJACK_RATE_LIMIT__REDIS_URL", url),
                ("NATTERJACK_RATE_LIMIT__REDIS_CA_FILE", ca_file),
                (
                    "NATTERJACK_RATE_LIMIT__REDIS_KEY_PREFIX",
                    fresh_prefix("tls"),
                ),
            ];
            TestServer::start_with(&pairs(&env)).await
        }
    };
    let good = format!("rediss://:redis-secret-9@127.0.0.1:{}/", redis.port);
    let wrong_password = format!("rediss://:not-it@127.0.0.1:{}/", redis.port);
    // The right CA and password: the budgets are in Redis.
    let trusted = start(good.clone(), &right_ca).await;
    assert!(store_up(&trusted).await, "{}", trusted.metrics().await);
    // A CA that did not sign Redis's certificate (the system's roots are not consulted
    // either): the handshake fails, so Redis counts as down.
    let distrusted = start(good, &other_ca).await;
    assert!(!store_up(&distrusted).await);
    // The right CA and the wrong password: refused by Redis's AUTH.
    let unauthorised = start(wrong_password, &right_ca).await;
    assert!(!store_up(&unauthorised).await);
    assert!(
        unauthorised
            .stderr_lines()
            .iter()
            .all(|l| !l.contains("not-it")),
        "the password never reaches the log"
    );
}
