//! A fresh PostgreSQL database for one test, bootstrapped the way an operator does it
//! (`PgStore::init` as the administrator, `PgStore::migrate` as the owner, `PgStore::open`
//! as the app role), with its own randomly named roles; dropped again at the end, and on
//! a panic too. Without a PostgreSQL server the tests say loudly that they were skipped,
//! except in CI, where they must run.

use natterjack_storage::PgStore;
use natterjack_storage::postgres::{PgConnectOptions, PgTarget, connect_options};
use sqlx::{ConnectOptions, Connection};
use std::time::Duration;

/// The administrator URL of the test server.
pub fn admin_url() -> String {
    std::env::var("NATTERJACK_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The administrator's options (to the administrator's own database).
pub fn admin_options() -> PgTarget {
    connect_options(&admin_url(), None).expect("NATTERJACK_TEST_PG_ADMIN_URL parses")
}

/// Drops a test's database and roles when dropped itself, unless [`Cleanup::run`] already
/// did: a failing test leaves nothing behind for the next run to trip over.
struct Cleanup {
    name: String,
    admin: PgConnectOptions,
    done: bool,
}

impl Cleanup {
    async fn run(&mut self) {
        let mut conn = self
            .admin
            .connect()
            .await
            .expect("admin connection for cleanup");
        for (template, name) in [
            ("DROP DATABASE IF EXISTS %I WITH (FORCE)", self.name.clone()),
            ("DROP ROLE IF EXISTS %I", format!("{}_app", self.name)),
            ("DROP ROLE IF EXISTS %I", format!("{}_owner", self.name)),
        ] {
            // The server quotes the (generated) name, as the store itself does.
            let statement: String = sqlx::query_scalar("SELECT format($1, $2)")
                .bind(template)
                .bind(&name)
                .fetch_one(&mut conn)
                .await
                .expect("format cleanup statement");
            sqlx::raw_sql(&statement)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        let _ = conn.close().await;
        self.done = true;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Drop cannot await, and may run inside the test's runtime: clean up on a thread
        // with a runtime of its own.
        let mut this = Cleanup {
            name: self.name.clone(),
            admin: self.admin.clone(),
            done: false,
        };
        self.done = true;
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(this.run());
        });
        if cleaner.join().is_err() {
            eprintln!("WARNING: could not drop test database {}", self.name);
        }
    }
}

/// One test's database, its owner and app roles, and the server's store on it.
pub struct TestDb {
    /// Database name; the roles are `<name>_owner` and `<name>_app`.
    pub name: String,
    /// The administrator, connected to the administrator's own database.
    pub admin: PgTarget,
    /// The owner role, to this database.
    pub owner: PgTarget,
    /// The app role, to this database.
    pub app: PgTarget,
    /// The store as `natterjack serve` opens it: the app role's pool.
    pub store: PgStore,
    cleanup: Cleanup,
}

fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl TestDb {
    /// A bootstrapped, migrated database with an open store, or `None` (after a loud
    /// `SKIPPED:` line) when no PostgreSQL server answers; in CI that is a failure instead.
    pub async fn create() -> Option<TestDb> {
        Self::create_from(&[]).await
    }

    /// Like [`Self::create`], but the owner first runs `older` (an earlier schema and its
    /// rows, as an earlier version left them), so that `migrate` upgrades it.
    pub async fn create_from(older: &[&str]) -> Option<TestDb> {
        let admin = admin_options();
        if let Err(e) = admin.connect().await {
            let test = std::thread::current()
                .name()
                .unwrap_or("a PostgreSQL test")
                .to_owned();
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is required in CI ({}:{}): {e}",
                admin.get_host(),
                admin.get_port()
            );
            eprintln!(
                "SKIPPED: {test}: PostgreSQL not reachable at {}:{} ({e})",
                admin.get_host(),
                admin.get_port()
            );
            return None;
        }
        let name = format!("nj_{}", random_hex());
        let cleanup = Cleanup {
            name: name.clone(),
            admin: admin.options().clone(),
            done: false,
        };
        let owner: PgTarget = admin
            .options()
            .clone()
            .username(&format!("{name}_owner"))
            .password(&random_hex())
            .database(&name)
            .into();
        let app: PgTarget = admin
            .options()
            .clone()
            .username(&format!("{name}_app"))
            .password(&random_hex())
            .database(&name)
            .into();
        PgStore::init(&admin, &owner, &app).await.expect("db init");
        if !older.is_empty() {
            let mut conn = sqlx::PgConnection::connect_with(&owner)
                .await
                .expect("connect as the owner");
            for sql in older {
                sqlx::raw_sql(sql)
                    .execute(&mut conn)
                    .await
                    .expect("older schema");
            }
            conn.close().await.expect("close");
        }
        PgStore::migrate(&owner, app.get_username(), &crate::support::keyring())
            .await
            .expect("db migrate");
        let store = PgStore::open(&app, 4, Duration::from_secs(5), crate::support::keyring())
            .await
            .expect("open as the app role");
        Some(TestDb {
            name,
            admin,
            owner,
            app,
            store,
            cleanup,
        })
    }

    /// The administrator's options to this test's database.
    pub fn admin_in_db(&self) -> PgTarget {
        self.admin.options().clone().database(&self.name).into()
    }

    /// Closes the store, drops the database (ending any session still on it) and both
    /// roles. Call it at the end of every test.
    pub async fn drop_all(mut self) {
        self.store.close().await;
        self.cleanup.run().await;
    }
}
