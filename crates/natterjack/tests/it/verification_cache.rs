//! The verification cache and the dummy hash, observed through the hasher's own counter on
//! the real service over a real SQLite file.

use natterjack::config::Config;
use natterjack::runtime;
use natterjack_core::ServiceError;
use natterjack_core::domain::Username;
use natterjack_core::principal::{AdminAccess, Caller};
use natterjack_core::service::Service;
use secrecy::SecretString;
use std::sync::Arc;

const PASSWORD: &str = "violet-anvil-73-harbour";

async fn service(cache_ttl_secs: u64) -> (tempfile::TempDir, Arc<Service>) {
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    cfg.auth.cache_ttl_secs = cache_ttl_secs;
    let store = natterjack::storage::prepare(&cfg).await.expect("store");
    let service = runtime::service(&cfg, store.store())
        .await
        .expect("service");
    let name = Username::parse("alice").expect("name");
    service
        .register(&Caller::Anonymous, None, name, SecretString::from(PASSWORD))
        .await
        .expect("register");
    (dir, service)
}

fn hashes(service: &Service) -> u64 {
    service.authenticator().hashing().computations_started()
}

async fn login(service: &Service, user: &str, password: &str) -> Result<(), ServiceError> {
    service
        .authenticate(user, &SecretString::from(password))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_cached_login_skips_argon2_and_a_wrong_password_never_hits_the_cache() {
    let (_dir, service) = service(60).await;
    let before = hashes(&service);
    login(&service, "alice", PASSWORD)
        .await
        .expect("first login");
    assert_eq!(hashes(&service), before + 1);
    for _ in 0..5 {
        login(&service, "alice", PASSWORD)
            .await
            .expect("cached login");
    }
    assert_eq!(
        hashes(&service),
        before + 1,
        "repeat logins are served from the cache"
    );
    assert_eq!(
        login(&service, "alice", "violet-anvil-73-harbouR").await,
        Err(ServiceError::Unauthenticated)
    );
    assert_eq!(
        hashes(&service),
        before + 2,
        "a wrong password is always verified"
    );
}

#[tokio::test]
async fn with_the_cache_switched_off_every_login_runs_argon2() {
    let (_dir, service) = service(0).await;
    let before = hashes(&service);
    for _ in 0..3 {
        login(&service, "alice", PASSWORD).await.expect("login");
    }
    assert_eq!(hashes(&service), before + 3);
}

#[tokio::test]
async fn unknown_users_and_malformed_names_cost_one_argon2_run_like_a_wrong_password() {
    let (_dir, service) = service(60).await;
    for user in ["alice", "nobody", "x", "'; DROP TABLE users; --"] {
        let before = hashes(&service);
        assert_eq!(
            login(&service, user, "wrong-password-123").await,
            Err(ServiceError::Unauthenticated)
        );
        assert_eq!(hashes(&service), before + 1, "{user:?}");
    }
}

#[tokio::test]
async fn oversized_passwords_are_refused_without_hashing() {
    let (_dir, service) = service(60).await;
    let before = hashes(&service);
    let huge = "x".repeat(257);
    assert_eq!(
        login(&service, "alice", &huge).await,
        Err(ServiceError::Unauthenticated)
    );
    assert_eq!(hashes(&service), before);
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // the test plays the operator at the console
async fn a_password_change_drops_the_cached_verification() {
    let (_dir, service) = service(60).await;
    login(&service, "alice", PASSWORD).await.expect("login");
    let name = Username::parse("alice").expect("name");
    let new_password = SecretString::from("quartz-lantern-88-meadow");
    service
        .change_password(AdminAccess::dangerous_local_operator(), &name, new_password)
        .await
        .expect("change");
    assert_eq!(
        login(&service, "alice", PASSWORD).await,
        Err(ServiceError::Unauthenticated)
    );
    login(&service, "alice", "quartz-lantern-88-meadow")
        .await
        .expect("new password");
}

#[tokio::test]
async fn a_hash_made_with_older_parameters_is_upgraded_on_login() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    let store = natterjack::storage::prepare(&cfg).await.expect("store");
    {
        let old = runtime::service(&cfg, store.store())
            .await
            .expect("service");
        let name = Username::parse("alice").expect("name");
        old.register(&Caller::Anonymous, None, name, SecretString::from(PASSWORD))
            .await
            .expect("register");
    }
    cfg.auth.argon2.iterations = 3;
    let upgraded = runtime::service(&cfg, store.store())
        .await
        .expect("service");
    login(&upgraded, "alice", PASSWORD)
        .await
        .expect("login with the old hash");
    let natterjack::storage::Storage::Sqlite(sqlite) = &store else {
        panic!("the default configuration is SQLite");
    };
    let hash: String = sqlite
        .on_reading_connection(|c| {
            c.query_row(
                "SELECT password_hash FROM users WHERE username = 'alice'",
                [],
                |r| r.get(0),
            )
        })
        .expect("hash");
    assert!(hash.contains("m=19456,t=3,p=1"), "{hash}");
    login(&upgraded, "alice", PASSWORD)
        .await
        .expect("login with the new hash");
}

#[tokio::test]
async fn concurrent_logins_with_the_same_password_share_one_argon2_run_unless_the_cache_is_off() {
    for (ttl, runs) in [(60, 1), (0, 4)] {
        let (_dir, service) = service(ttl).await;
        let before = hashes(&service);
        let logins: Vec<_> = (0..4)
            .map(|_| {
                let service = service.clone();
                tokio::spawn(async move { login(&service, "alice", PASSWORD).await })
            })
            .collect();
        for l in logins {
            l.await.expect("task").expect("login");
        }
        assert_eq!(hashes(&service) - before, runs, "cache_ttl_secs = {ttl}");
        assert_eq!(service.authenticator().verifications_in_flight(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_dropped_while_waiting_for_the_same_credentials_leave_nothing_behind() {
    let (_dir, service) = service(60).await;
    // Wrong passwords: nothing is cached, so each waiter hashes in turn and the table
    // stays busy long enough for the aborts to land while logins wait or hash.
    let logins: Vec<_> = (0..12)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { login(&service, "alice", "a-wrong-password-1").await })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while service.authenticator().verifications_in_flight() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no login reached its turn"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(service.authenticator().verifications_in_flight(), 1);
    for l in &logins[..8] {
        l.abort();
    }
    for l in logins {
        let _ = l.await;
    }
    assert_eq!(service.authenticator().verifications_in_flight(), 0);
}
