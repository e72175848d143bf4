//! Set-up shared by the benchmarks that measure the service itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use natterjack::config::Config;
use natterjack::runtime;
use natterjack_core::domain::Username;
use natterjack_core::principal::Caller;
use natterjack_core::service::Service;
use secrecy::SecretString;
use std::sync::Arc;

/// alice's password in every benchmark.
pub const PASSWORD: &str = "violet-anvil-73-harbour";

/// The service as `natterjack serve` builds it (default configuration, a fresh SQLite file)
/// with one user, alice, registered; the runtime it was built on; its data directory.
pub fn service_with_alice() -> (tokio::runtime::Runtime, tempfile::TempDir, Arc<Service>) {
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
        let store = natterjack::storage::prepare(&cfg).await.unwrap();
        let service = runtime::service(&cfg, store.store()).await.unwrap();
        service
            .register(
                &Caller::Anonymous,
                None,
                Username::parse("alice").unwrap(),
                SecretString::from(PASSWORD),
            )
            .await
            .unwrap();
        service
    });
    (rt, dir, service)
}
