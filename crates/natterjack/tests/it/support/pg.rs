//! A fresh PostgreSQL database for one test, prepared by the real `natterjack db init` and
//! `natterjack migrate`, with its own roles; dropped again at the end. Without a PostgreSQL
//! server the tests say loudly that they were skipped, except in CI, where they must run.

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::path::Path;

/// The administrator URL of the test server.
pub fn admin_url() -> String {
    std::env::var("NATTERJACK_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// One test's database and roles.
pub struct PgDatabase {
    /// Database name (also the stem of the role names).
    pub name: String,
    /// `host:port` of the server.
    pub host: String,
    /// The app role's URL (`database.url`).
    pub app_url: String,
    /// The owner role's URL (`database.owner_url`).
    pub owner_url: String,
}

impl PgDatabase {
    /// Names a fresh database and roles (nothing is created yet), or `None` when no
    /// PostgreSQL server answers (a panic in CI).
    pub async fn fresh(test: &str) -> Option<Self> {
        let admin = admin_url();
        if let Err(e) = PgConnection::connect(&admin).await {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is required in CI ({admin}): {e}"
            );
            eprintln!("SKIPPED: {test}: PostgreSQL not reachable at {admin}: {e}");
            return None;
        }
        let name = format!("nj_{:016x}", rand_u64());
        // The app and owner roles reach the same server as the administrator.
        let host = admin
            .split_once('@')
            .and_then(|(_, rest)| rest.split('/').next())
            .unwrap_or("127.0.0.1:5432")
            .to_owned();
        Some(Self {
            app_url: format!("postgres://{name}_app:app-{name}@{host}/{name}"),
            owner_url: format!("postgres://{name}_owner:owner-{name}@{host}/{name}"),
            name,
            host,
        })
    }

    /// The environment that points a `natterjack` process at this database.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NATTERJACK_DATABASE__URL", self.app_url.clone()),
            ("NATTERJACK_DATABASE__OWNER_URL", self.owner_url.clone()),
            ("NATTERJACK_DB_ADMIN_URL", admin_url()),
        ]
    }

    /// Runs `natterjack db init` and `natterjack migrate` for this database.
    pub fn prepare(&self, data_dir: &Path) {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ok, out, err) = super::cli(data_dir, &["db", "init"], "", &env);
        assert!(ok, "db init failed: {out}{err}");
        let (ok, out, err) = super::cli(data_dir, &["migrate"], "", &env);
        assert!(ok, "migrate failed: {out}{err}");
    }

    /// Drops the database (even with sessions still open) and both roles.
    pub async fn drop_all(self) {
        let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
        for statement in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}_app", self.name),
            format!("DROP ROLE IF EXISTS {}_owner", self.name),
        ] {
            // Test-only DDL on names this module generated (hex digits), not on input.
            sqlx::raw_sql(&statement)
                .execute(&mut admin)
                .await
                .expect("cleanup");
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}
