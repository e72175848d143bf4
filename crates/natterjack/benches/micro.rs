//! Micro-benchmarks of the security controls: what each control costs a single request.
//!
//! Every request passes the same pipeline (rate limit, Basic parsing, authentication, access
//! check, audit record), so each control's cost is paid on every call; these cases put a
//! number on each one, next to the one deliberately expensive step, Argon2id, that the
//! verification cache keeps off the common path.
//!
//! - `micro_rate_limit`: the first control runs before anything else and must stay cheap
//!   enough that a flood is refused for less than it costs to send. Cases: a keyed decision
//!   that admits (per address, credentials class and the global budget, as for every gRPC
//!   call, with 10,000 other clients in the table), the same decision refusing a flooding
//!   address, the per-principal decision after authentication, and the failed-login check
//!   made before any password is hashed.
//! - `micro_rate_limit_redis`: the address decision with every budget in Redis (several
//!   nodes sharing one quota), admitting and refusing, beside the in-memory decision driven
//!   the same way: what a round trip to Redis adds to every request.
//! - `micro_acl`: the permission check every space route makes. The pure decisions (the
//!   held-versus-needed check and the escalation rule `policy::may_change`) and the whole
//!   `Service::authorize` over SQLite, which adds the membership read that dominates.
//! - `micro_audit`: the HMAC-SHA-256 chain link (`AuditKey::link`) over a typical completion
//!   record; every request writes at least one record, a state change two.
//! - `micro_basic`: `basic_credentials` parses attacker-controlled input on every request
//!   that carries an `Authorization` header (and on every request that does not, to find out).
//! - `micro_authn`: a login that hits the verification cache (`Authenticator` over a real
//!   SQLite store, after one successful login): the price of authentication per request in
//!   the steady state.
//! - `micro_argon2id`: one Argon2id verification at the default parameters
//!   (`HashingParams::default()`, through `PasswordHashing::verify`), and the two failed-login
//!   cases through `Authenticator::authenticate`: a wrong password and an unknown user must
//!   cost the same, or response time reveals which accounts exist. Besides criterion's
//!   per-case means, a paired comparison interleaves the two cases in a random order per
//!   round and reports the ratio of the two medians and the median and quartiles of the
//!   per-round ratios (the approach of `login_timing`, which does the full equivalence check).
//!
//! Run with `bench/micro` (which also writes the section in BENCHMARKS.md), or
//! `cargo bench -p natterjack --bench micro`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use axum::http::{HeaderMap, HeaderValue, header};
use criterion::Criterion;
use natterjack_api::pipeline::rate_limit::{Class, RateLimitConfig, RateLimits};
use natterjack_api::schemes::basic::basic_credentials;
use natterjack_core::audit::{AuditKey, AuditRecord, Phase};
use natterjack_core::auth::{HashingParams, PasswordHashing};
use natterjack_core::domain::{Permissions, SpaceName, Timestamp};
use natterjack_core::policy::{GrantPolicy, may_change};
use natterjack_core::principal::Principal;
use natterjack_core::rate::gcra::Quota;
use natterjack_core::service::Service;
use secrecy::SecretString;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

mod support;

use support::PASSWORD;
const WRONG: &str = "wrong-password-123";
/// Rounds of the paired unknown-user / wrong-password comparison.
const PAIRED_ROUNDS: usize = 200;

/// What the database-backed cases share: a service over a fresh SQLite file with one user,
/// alice, who owns one space.
struct World {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    service: Arc<Service>,
    alice: Principal,
    space: natterjack_core::domain::SpaceId,
}

/// The service with alice (as `login_timing` uses it), her login and her space.
fn world() -> World {
    let (rt, dir, service) = support::service_with_alice();
    let (alice, space) = rt.block_on(async {
        let alice = service
            .authenticate("alice", &SecretString::from(PASSWORD))
            .await
            .unwrap();
        let space = service
            .create_space(&alice, SpaceName::parse("general").unwrap(), None)
            .await
            .unwrap();
        (alice, space.id)
    });
    World {
        rt,
        _dir: dir,
        service,
        alice,
        space,
    }
}

/// Quotas so generous that every decision admits: the same map lookups and arithmetic as a
/// normal admitted request, without the bucket running dry during the measurement.
fn generous() -> RateLimitConfig {
    let open = Quota {
        burst: 1_000_000,
        per_second: 1e9,
    };
    RateLimitConfig {
        per_ip: open,
        credentials: open,
        registration: open,
        global: open,
        per_principal: open,
        failed_logins: open,
        ..RateLimitConfig::default()
    }
}

/// The value of a future that is ready at once: the in-memory limiter never waits, so its
/// decisions are measured without a runtime's scheduling around them.
fn now<T>(decision: impl std::future::Future<Output = T>) -> T {
    use futures_util::FutureExt;
    decision
        .now_or_never()
        .expect("an in-memory decision is ready at once")
}

fn rate_limit(c: &mut Criterion, w: &World) {
    let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let admitting = RateLimits::new(&generous()).unwrap();
    // Other clients in the table, so the lookup is not into an almost empty map.
    for i in 0..10_000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        now(admitting.admit(ip, Class::Credentials)).unwrap();
    }
    // This client's per-address burst spent, and a refill so slow (one request in about
    // eleven days) that every call during the measurement is refused by the first policy;
    // the decision is the same code as under the default quotas.
    let refusing = RateLimits::new(&RateLimitConfig {
        per_ip: Quota {
            burst: 10,
            per_second: 1e-6,
        },
        ..RateLimitConfig::default()
    })
    .unwrap();
    while now(refusing.admit(client, Class::Credentials)).is_ok() {}

    let mut group = c.benchmark_group("micro_rate_limit");
    group.bench_function("address_admitted", |b| {
        b.iter(|| now(admitting.admit(black_box(client), Class::Credentials)).unwrap());
    });
    group.bench_function("address_refused", |b| {
        b.iter(|| now(refusing.admit(black_box(client), Class::Credentials)).unwrap_err());
    });
    group.bench_function("principal_admitted", |b| {
        b.iter(|| now(admitting.admit_principal(black_box(w.alice.id()))).unwrap());
    });
    let budgets = admitting.login_budgets().unwrap();
    group.bench_function("login_allowed", |b| {
        b.iter(|| {
            now(budgets.allowed(black_box("alice"), black_box(client))).unwrap();
        });
    });
    group.finish();
}

/// The same decisions with every budget in Redis (the machine's server on 127.0.0.1:6379,
/// under a key prefix of this run's own), beside the in-memory decisions driven the same way
/// (`block_on` per call), so that the ratio is the round trip and the script alone.
fn shared_rate_limit(c: &mut Criterion, w: &World) {
    let url = std::env::var("NATTERJACK_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!(
        "natterjack-bench:{}:",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let timeout = Duration::from_secs(1);
    // The connection's driver is a task: it needs the runtime.
    let _entered = w.rt.enter();
    let store =
        natterjack::shared_limits::RedisBuckets::connect(&url, None, &prefix, timeout).unwrap();
    let store: Arc<dyn natterjack_core::rate::shared::SharedBuckets> = Arc::new(store);
    if w.rt.block_on(store.ping()).is_err() {
        eprintln!("SKIPPED: micro_rate_limit_redis: Redis not reachable at {url}");
        return;
    }
    let shared = || {
        natterjack_core::rate::shared::SharedLimits::start(
            store.clone(),
            timeout,
            timeout,
            Vec::new(),
        )
    };
    let clock = natterjack_core::clock::system();
    let in_memory = RateLimits::new(&generous()).unwrap();
    let admitting = RateLimits::with_clock(&generous(), clock.clone(), Some(shared())).unwrap();
    let refusing_quota = RateLimitConfig {
        per_ip: Quota {
            burst: 10,
            per_second: 1e-6,
        },
        ..RateLimitConfig::default()
    };
    let refusing = RateLimits::with_clock(&refusing_quota, clock, Some(shared())).unwrap();
    // The budgets are shared: the flooding client must be another address than the
    // admitted one, or its spent bucket would refuse both.
    let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let flooder = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8));
    while w
        .rt
        .block_on(refusing.admit(flooder, Class::Credentials))
        .is_ok()
    {}

    let mut group = c.benchmark_group("micro_rate_limit_redis");
    group.bench_function("address_admitted_in_memory", |b| {
        b.iter(|| {
            w.rt.block_on(in_memory.admit(black_box(client), Class::Credentials))
                .unwrap()
        });
    });
    group.bench_function("address_admitted", |b| {
        b.iter(|| {
            w.rt.block_on(admitting.admit(black_box(client), Class::Credentials))
                .unwrap()
        });
    });
    group.bench_function("address_refused", |b| {
        b.iter(|| {
            w.rt.block_on(refusing.admit(black_box(flooder), Class::Credentials))
                .unwrap_err()
        });
    });
    group.finish();
}

fn acl(c: &mut Criterion, w: &World) {
    let mut group = c.benchmark_group("micro_acl");
    // What `SpaceAccess::require` decides once the held permissions are known.
    group.bench_function("permission_check", |b| {
        let held = Permissions::parse("rw").unwrap();
        b.iter(|| {
            let (held, needed) = (black_box(held), black_box(Permissions::WRITE));
            held.contains(needed) && !held.is_empty()
        });
    });
    group.bench_function("escalation_subset", |b| {
        let granter = Permissions::parse("rw").unwrap();
        let change = Permissions::parse("rd").unwrap();
        b.iter(|| {
            may_change(
                black_box(GrantPolicy::Subset),
                black_box(granter),
                black_box(change),
            )
            .unwrap_err()
        });
    });
    group.bench_function("escalation_full_only", |b| {
        b.iter(|| {
            may_change(
                black_box(GrantPolicy::FullOnly),
                black_box(Permissions::ALL),
                black_box(Permissions::READ),
            )
            .unwrap();
        });
    });
    // The whole check as a route runs it: the membership read from SQLite, then the decision.
    group.bench_function("authorize_sqlite", |b| {
        b.iter(|| {
            w.rt.block_on(w.service.authorize(&w.alice, w.space, Permissions::WRITE))
                .unwrap()
        });
    });
    group.finish();
}

fn audit(c: &mut Criterion) {
    let key = AuditKey::new([7u8; 32]);
    let record = AuditRecord {
        time: Timestamp::now(),
        request_id: "0123456789abcdef0123456789abcdef".into(),
        phase: Phase::Complete,
        transport: natterjack_core::audit::Transport::Rest,
        client_ip: "198.51.100.7".into(),
        principal: Some("alice".into()),
        auth_method: natterjack_core::audit::AuthMethod::Basic,
        operation: "POST /spaces/{id}/messages".into(),
        target: "id=1".into(),
        status: Some(natterjack_core::audit::Status::Http(201)),
        decision: natterjack_core::audit::Decision::Allow,
        reason: Some("holds rwd on space 1".into()),
        duration_us: 1234,
        count: None,
    };
    let previous = key.genesis();
    let mut group = c.benchmark_group("micro_audit");
    group.bench_function("link", |b| {
        b.iter(|| key.link(black_box(&previous), black_box(&record), black_box(42)));
    });
    group.finish();
}

fn basic(c: &mut Criterion) {
    let mut with = HeaderMap::new();
    // alice:violet-anvil-73-harbour
    with.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic YWxpY2U6dmlvbGV0LWFudmlsLTczLWhhcmJvdXI="),
    );
    with.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let without = HeaderMap::new();
    let mut group = c.benchmark_group("micro_basic");
    group.bench_function("valid_header", |b| {
        b.iter(|| basic_credentials(black_box(&with)).unwrap().unwrap());
    });
    group.bench_function("no_header", |b| {
        b.iter(|| basic_credentials(black_box(&without)).unwrap().is_none());
    });
    group.finish();
}

fn authn(c: &mut Criterion, w: &World) {
    let right = SecretString::from(PASSWORD);
    let auth = w.service.authenticator();
    let mut group = c.benchmark_group("micro_authn");
    group.bench_function("cache_hit", |b| {
        // One successful login puts the verification in the cache (TTL 60 s by default;
        // the case runs for well under that).
        w.rt.block_on(auth.authenticate("alice", &right)).unwrap();
        b.iter(|| w.rt.block_on(auth.authenticate("alice", &right)).unwrap());
    });
    group.finish();
}

fn argon2id(c: &mut Criterion, w: &World) {
    let params = HashingParams::default();
    let hashing = PasswordHashing::new(params, 1, Duration::from_secs(60)).unwrap();
    let phc =
        w.rt.block_on(hashing.hash(Zeroizing::new(PASSWORD.as_bytes().to_vec())))
            .unwrap();
    let wrong = SecretString::from(WRONG);
    let auth = w.service.authenticator();

    let mut group = c.benchmark_group("micro_argon2id");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("verify", |b| {
        b.iter(|| {
            let candidate = Zeroizing::new(PASSWORD.as_bytes().to_vec());
            assert!(
                w.rt.block_on(hashing.verify(candidate, phc.clone()))
                    .unwrap()
            );
        });
    });
    group.bench_function("wrong_password", |b| {
        b.iter(|| {
            w.rt.block_on(auth.authenticate("alice", &wrong))
                .unwrap_err()
        });
    });
    group.bench_function("unknown_user", |b| {
        b.iter(|| {
            w.rt.block_on(auth.authenticate("mallory", &wrong))
                .unwrap_err()
        });
    });
    group.finish();
}

/// Where criterion writes, found the way criterion finds it.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
            PathBuf::from,
        )
        .join("criterion")
}

/// Unknown user against wrong password, interleaved in a random order within each round and
/// compared per round, so drift on the machine hits both alike. Writes
/// `micro_argon2id/paired.json` beside criterion's output for `bench/micro`.
fn paired_unknown_vs_wrong(w: &World, rounds: usize) {
    let auth = w.service.authenticator();
    let wrong = SecretString::from(WRONG);
    let cases = [("wrong_password", "alice"), ("unknown_user", "mallory")];
    let mut samples = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..rounds {
        // xorshift: a deterministic coin for the order, without another dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let order = if seed & 1 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let started = Instant::now();
            w.rt.block_on(auth.authenticate(cases[i].1, &wrong))
                .unwrap_err();
            samples[i].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    // The value at fraction `q` of the sorted samples (0.5: the median).
    let quantile = |mut v: Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let ratios: Vec<f64> = (0..rounds).map(|r| samples[1][r] / samples[0][r]).collect();
    let wrong_ms = quantile(samples[0].clone(), 0.5);
    let unknown_ms = quantile(samples[1].clone(), 0.5);
    let report = serde_json::json!({
        "rounds": rounds,
        "wrong_password_median_ms": wrong_ms,
        "unknown_user_median_ms": unknown_ms,
        "ratio_of_medians_unknown_to_wrong": unknown_ms / wrong_ms,
        "median_ratio_unknown_to_wrong": quantile(ratios.clone(), 0.5),
        "ratio_quartiles": [quantile(ratios.clone(), 0.25), quantile(ratios, 0.75)],
    });
    let path = criterion_home().join("micro_argon2id/paired.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("paired unknown_user / wrong_password: {report}");
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let w = world();
    rate_limit(&mut criterion, &w);
    shared_rate_limit(&mut criterion, &w);
    acl(&mut criterion, &w);
    audit(&mut criterion);
    basic(&mut criterion);
    authn(&mut criterion, &w);
    argon2id(&mut criterion, &w);
    // Only under `cargo bench` (which passes `--bench`), not when cargo test runs the target.
    if std::env::args().any(|a| a == "--bench") {
        paired_unknown_vs_wrong(&w, PAIRED_ROUNDS);
    }
    criterion.final_summary();
}
