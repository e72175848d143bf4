//! Two real `natterjack serve` processes on one fresh PostgreSQL database, sharing the audit
//! key and the key-encryption key, as two nodes behind a load balancer would.

use super::pg::PgDatabase;
use super::{TestServer, cli, pairs};

/// Two nodes on one fresh database, sharing the audit key and the key-encryption key.
pub struct Nodes {
    /// The database.
    pub db: PgDatabase,
    /// Node A, started first (it prepared the database).
    pub a: TestServer,
    /// Node B.
    pub b: TestServer,
    /// The environment of a process that acts on the database (the operator CLI).
    pub env: Vec<(&'static str, String)>,
}

impl Nodes {
    /// Starts both nodes, B with `b_max_age_ms` as its read cache's maximum age, or `None`
    /// (a panic in CI) without PostgreSQL.
    pub async fn start(test: &str, b_max_age_ms: &str) -> Option<Self> {
        let db = PgDatabase::fresh(test).await?;
        let a_dir = tempfile::tempdir().unwrap();
        db.prepare(&a_dir.path().join("data"));
        let mut env = db.env();
        let a = TestServer::start_in(a_dir, &pairs(&env)).await;
        let path = |file: &str| a.data_dir().join(file).to_str().unwrap().to_owned();
        env.push(("NATTERJACK_AUDIT__KEY_FILE", path("audit.key")));
        env.push(("NATTERJACK_ENCRYPTION__KEY_FILE", path("encryption.key")));
        let mut b_env = pairs(&env);
        b_env.push(("NATTERJACK_DATABASE__CACHE_MAX_AGE_MS", b_max_age_ms));
        let b = TestServer::start_with(&b_env).await;
        Some(Self { db, a, b, env })
    }

    /// Runs the operator CLI against the shared database (from A's data directory).
    pub fn cli(&self, args: &[&str], stdin: &str) {
        let (ok, out, err) = cli(&self.a.data_dir(), args, stdin, &pairs(&self.env));
        assert!(ok, "{args:?}: {out}{err}");
    }

    /// Stops both nodes and drops the database.
    pub async fn finish(self) {
        drop(self.a);
        drop(self.b);
        self.db.drop_all().await;
    }
}
