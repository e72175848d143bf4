//! Login timing: an unknown user, a malformed username and a wrong password must cost the
//! same (one Argon2id verification at the configured parameters), so response time does
//! not reveal whether an account exists. A cache hit is shown for scale.
//!
//! Run with `bench/login-timing` (which also writes the ratios to BENCHMARKS.md), or
//! `cargo bench -p natterjack --bench login_timing`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use criterion::Criterion;
use secrecy::SecretString;
use std::time::Duration;

mod support;

use support::{PASSWORD, service_with_alice as setup};

fn login_timing(c: &mut Criterion) {
    let (rt, _dir, service) = setup();
    let wrong = SecretString::from("wrong-password-123");
    let right = SecretString::from(PASSWORD);

    let mut group = c.benchmark_group("login");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("wrong_password", |b| {
        b.iter(|| {
            rt.block_on(service.authenticate("alice", &wrong))
                .unwrap_err()
        });
    });
    group.bench_function("unknown_user", |b| {
        b.iter(|| {
            rt.block_on(service.authenticate("mallory", &wrong))
                .unwrap_err()
        });
    });
    group.bench_function("malformed_username", |b| {
        b.iter(|| {
            rt.block_on(service.authenticate("'; DROP TABLE users; --", &wrong))
                .unwrap_err()
        });
    });
    group.bench_function("cache_hit", |b| {
        rt.block_on(service.authenticate("alice", &right)).unwrap();
        b.iter(|| rt.block_on(service.authenticate("alice", &right)).unwrap());
    });
    group.finish();
}

/// The equivalence check proper: the three failed-login cases interleaved in a random order
/// within each round, so drift (CPU frequency, page cache, other load) hits them alike, and
/// compared per round. Writes `target/criterion/login/paired.json` for `bench/login-timing`.
fn paired_comparison(rounds: usize) {
    let (rt, _dir, service) = setup();
    let wrong = SecretString::from("wrong-password-123");
    let cases = [
        ("wrong_password", "alice"),
        ("unknown_user", "mallory"),
        ("malformed_username", "'; DROP TABLE users; --"),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); cases.len()];
    let mut order: Vec<usize> = (0..cases.len()).collect();
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
            rt.block_on(service.authenticate(cases[i].1, &wrong))
                .unwrap_err();
            samples[i].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut report = serde_json::Map::new();
    for (i, (name, _)) in cases.iter().enumerate() {
        let mut ratios: Vec<f64> = (0..rounds).map(|r| samples[i][r] / samples[0][r]).collect();
        let mut own = samples[i].clone();
        report.insert(
            (*name).to_owned(),
            serde_json::json!({"median_ms": median(&mut own), "median_ratio_to_wrong_password": median(&mut ratios)}),
        );
    }
    report.insert("rounds".to_owned(), serde_json::json!(rounds));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/criterion/login/paired.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("paired comparison: {}", serde_json::Value::Object(report));
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    login_timing(&mut criterion);
    paired_comparison(200);
    criterion.final_summary();
}
