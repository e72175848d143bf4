//! Login timing: an unknown user, a malformed username and a wrong password must cost the
//! same (one Argon2id verification at the configured parameters), so response time does
//! not reveal whether an account exists. A cache hit is shown for scale.
//!
//! Run with `bench/login-timing` (which also writes the ratios to BENCHMARKS.md), or
//! `cargo bench -p natterjack --bench login_timing`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use natterjack::config::Config;
use natterjack::runtime;
use natterjack_core::domain::Username;
use natterjack_core::principal::Caller;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "violet-anvil-73-harbour";

fn login_timing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let service = rt.block_on(async {
        runtime::migrate(&cfg).await.unwrap();
        let store = runtime::open_store(&cfg).await.unwrap();
        let service = runtime::service(&cfg, Arc::new(store)).await.unwrap();
        let alice = Username::parse("alice").unwrap();
        service
            .register(
                &Caller::Anonymous,
                None,
                alice,
                SecretString::from(PASSWORD),
            )
            .await
            .unwrap();
        service
    });
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

criterion_group!(benches, login_timing);
criterion_main!(benches);
