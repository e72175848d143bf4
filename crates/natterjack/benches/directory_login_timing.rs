//! Login timing against a real LDAP directory: an unknown user must cost what a known user
//! with a wrong password costs (the adapter searches, finds nothing, and still binds, to a
//! name that cannot exist), so response time does not reveal whether a directory entry
//! exists. A right password with the verification cache off, and a cache hit, are shown for
//! scale.
//!
//! Everything goes through `Authenticator::authenticate` over a fresh SQLite store, with
//! `passwords = "directory"`, so the whole core path (name check, link lookup, cache, bind)
//! is measured. slapd is the tests' throw-away directory (`tests/it/support/slapd.rs`:
//! users alice, bob and carol, StartTLS with a development CA).
//!
//! Run with `bench/directory-login-timing` (which also writes the ratios to BENCHMARKS.md),
//! or `cargo bench -p natterjack --bench directory_login_timing`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use criterion::Criterion;
use natterjack::config::Config;
use natterjack_core::auth::{Authenticator, PasswordHashing, PasswordSource, VerificationCache};
use natterjack_federation::ldap::{LdapDirectory, LdapSettings};
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The shape `slapd.rs` expects beside it (`super::rsyslog::TlsFiles`).
mod rsyslog {
    use std::path::PathBuf;

    /// The directory's CA, certificate and key.
    pub struct TlsFiles {
        pub ca: PathBuf,
        pub cert: PathBuf,
        pub key: PathBuf,
    }
}

/// The tests' slapd, shared as is (the bench uses `Slapd::shared` and its accessors only).
#[allow(dead_code)]
#[path = "../tests/it/support/slapd.rs"]
mod slapd;

use slapd::Slapd;

/// A wrong password for any of the directory's users.
const WRONG: &str = "wrong-directory-pw-123";

/// The failed logins compared in the paired rounds: (case, username).
const FAILED: [(&str, &str); 4] = [
    // alice has logged in before: her local account is linked to her directory entry.
    ("wrong_password", "alice"),
    // The same case again: how far two identical cases drift apart (the noise floor).
    ("wrong_password_again", "alice"),
    // No directory entry, no local account.
    ("unknown_user", "mallory"),
    // A directory entry that never logged in here: no local account either.
    ("wrong_password_unlinked", "carol"),
];

/// The benchmark's world: slapd, a SQLite store with alice linked, and two authenticators
/// over that store (verification cache on, as by default, and off).
struct Setup {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    cached: Authenticator,
    uncached: Authenticator,
    alice_password: SecretString,
    url: String,
}

fn setup() -> Setup {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let slapd = Slapd::shared().expect("slapd is required (apt-get install slapd ldap-utils)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    // As the server configures it: StartTLS on ldap://, the directory's CA, the admin group.
    let mut settings = LdapSettings::new(
        slapd.ldap_url(),
        slapd.people_base(),
        slapd.service_dn(),
        slapd.service_password_file(),
    );
    settings.ca_file = Some(PathBuf::from(slapd.ca_file()));
    settings.admin_group = Some(slapd.admin_group_dn().to_owned());
    let directory = Arc::new(LdapDirectory::new(&settings).unwrap());
    let hashing = Arc::new(
        PasswordHashing::new(
            cfg.auth.argon2,
            cfg.auth.max_concurrent_hashes,
            Duration::from_millis(cfg.auth.hash_queue_wait_ms),
        )
        .unwrap(),
    );
    let alice_password = SecretString::from(slapd.user_password("alice"));
    let (cached, uncached) = rt.block_on(async {
        let store = natterjack::storage::prepare(&cfg).await.unwrap().store();
        let authenticator = |ttl: Duration| {
            let store = store.clone();
            let hashing = hashing.clone();
            let directory = directory.clone();
            async move {
                Authenticator::new(store, hashing, VerificationCache::new(ttl, 10_000))
                    .await
                    .unwrap()
                    .with_directory(directory, PasswordSource::Directory)
            }
        };
        let cached = authenticator(Duration::from_secs(cfg.auth.cache_ttl_secs.max(1))).await;
        let uncached = authenticator(Duration::ZERO).await;
        // alice's first login links her local account; carol never logs in.
        cached.authenticate("alice", &alice_password).await.unwrap();
        (cached, uncached)
    });
    Setup {
        rt,
        _dir: dir,
        cached,
        uncached,
        alice_password,
        url: slapd.ldap_url(),
    }
}

fn directory_login_timing(c: &mut Criterion, s: &Setup) {
    let wrong = SecretString::from(WRONG);
    let mut group = c.benchmark_group("directory_login");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(6));
    for (name, user) in [FAILED[0], FAILED[2], FAILED[3]] {
        group.bench_function(name, |b| {
            b.iter(|| {
                s.rt.block_on(s.cached.authenticate(user, &wrong))
                    .unwrap_err()
            });
        });
    }
    group.bench_function("right_password_no_cache", |b| {
        b.iter(|| {
            s.rt.block_on(s.uncached.authenticate("alice", &s.alice_password))
                .unwrap()
        });
    });
    group.bench_function("cache_hit", |b| {
        s.rt.block_on(s.cached.authenticate("alice", &s.alice_password))
            .unwrap();
        b.iter(|| {
            s.rt.block_on(s.cached.authenticate("alice", &s.alice_password))
                .unwrap()
        });
    });
    group.finish();
}

/// The equivalence check proper: the failed-login cases run in a random order within each
/// round, so drift (CPU frequency, slapd's caches, other load) hits them alike, and each is
/// divided by the wrong-password time of the same round. Writes `paired.json` to
/// `$DIRECTORY_TIMING_OUT` (else `target/criterion/directory_login/paired.json` in the
/// repository) for `bench/directory-login-timing`.
fn paired_comparison(s: &Setup, rounds: usize) {
    let wrong = SecretString::from(WRONG);
    // A few logins of every case first, so that no case pays for a cold start.
    for _ in 0..20 {
        for (_, user) in FAILED {
            s.rt.block_on(s.cached.authenticate(user, &wrong))
                .unwrap_err();
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); FAILED.len()];
    let mut order: Vec<usize> = (0..FAILED.len()).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..rounds {
        // A small xorshift shuffle: deterministic, and no extra dependency for it.
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            let started = std::time::Instant::now();
            s.rt.block_on(s.cached.authenticate(FAILED[i].1, &wrong))
                .unwrap_err();
            samples[i].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    // The median of sorted `v`, and a distribution-free 95% confidence interval for it
    // (order statistics n/2 ± 0.98·√n).
    let median_ci = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let half = (0.98 * (n as f64).sqrt()).ceil() as usize;
        let lo = (n / 2).saturating_sub(half);
        let hi = (n / 2 + half).min(n - 1);
        (v[n / 2], v[lo], v[hi])
    };
    let mut report = serde_json::Map::new();
    for (i, (name, _)) in FAILED.iter().enumerate() {
        let mut ratios: Vec<f64> = (0..rounds).map(|r| samples[i][r] / samples[0][r]).collect();
        let (ratio, ratio_lo, ratio_hi) = median_ci(&mut ratios);
        let quartiles = (ratios[rounds / 4], ratios[rounds * 3 / 4]);
        let (ms, _, _) = median_ci(&mut samples[i].clone());
        report.insert(
            (*name).to_owned(),
            serde_json::json!({
                "median_ms": ms,
                "median_ratio_to_wrong_password": ratio,
                "median_ratio_ci95": [ratio_lo, ratio_hi],
                "ratio_quartiles": [quartiles.0, quartiles.1],
            }),
        );
    }
    report.insert("rounds".to_owned(), serde_json::json!(rounds));
    report.insert("url".to_owned(), serde_json::json!(s.url));
    let path = std::env::var_os("DIRECTORY_TIMING_OUT").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/criterion/directory_login/paired.json")
        },
        PathBuf::from,
    );
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("paired comparison: {}", serde_json::Value::Object(report));
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let setup = setup();
    directory_login_timing(&mut criterion, &setup);
    paired_comparison(&setup, 1000);
    criterion.final_summary();
}
