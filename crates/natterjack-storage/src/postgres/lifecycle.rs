//! The PostgreSQL store's life: bootstrap as an administrator, migrate as the owner, serve
//! as the app role, and nothing else in between.

use super::errors::{classify, refuse};
use super::identifier::Identifier;
use super::target::PgTarget;
use super::{database, migrate, privileges, roles, scram, sealed};
use crate::Migrated;
use crate::sealing::{KeyEncryptionKey, Keyring};
use natterjack_core::ports::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::sync::Arc;
use std::time::Duration;

/// The PostgreSQL store: a pool of connections as the app role, which holds exactly the
/// grants the API needs (checked when the pool opens).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The way the pool connects, kept for the listeners and leases (and so that a TLS
    /// forwarder lives as long as the store).
    target: Arc<PgTarget>,
    keyring: Arc<Keyring>,
    ids: Arc<crate::ids::IdBlocks>,
}

/// The three names `init` works with, checked before any statement runs.
struct Names {
    database: Identifier,
    owner: Identifier,
    app: Identifier,
}

impl Names {
    fn of(
        admin: &PgConnectOptions,
        owner: &PgConnectOptions,
        app: &PgConnectOptions,
    ) -> Result<Self, StoreError> {
        let owner_name = Identifier::role("owner role", owner.get_username())?;
        let app_name = Identifier::role("app role", app.get_username())?;
        if owner_name == app_name {
            return Err(refuse(format!(
                "the owner and app URLs name the same role {owner_name}: the server must not connect as the role that owns the tables"
            )));
        }
        if admin.get_username() == owner_name.as_str() || admin.get_username() == app_name.as_str()
        {
            return Err(refuse(
                "the administrator URL names the same role as the owner or app URL: give each its own role",
            ));
        }
        let database = match (owner.get_database(), app.get_database()) {
            (Some(o), Some(a)) if o == a => Identifier::parse("database", o)?,
            (Some(_), Some(_)) => {
                return Err(refuse(
                    "the owner and app URLs name different databases: they must name the same one",
                ));
            }
            _ => {
                return Err(refuse(
                    "the owner and app URLs must both name the database (postgres://role@host/DATABASE)",
                ));
            }
        };
        if matches!(database.as_str(), "postgres" | "template0" | "template1")
            || Some(database.as_str()) == admin.get_database()
        {
            return Err(refuse(format!(
                "refusing to use database {database}: it is a system database or the administrator's own; name a database for Natterjack alone"
            )));
        }
        Ok(Self {
            database,
            owner: owner_name,
            app: app_name,
        })
    }
}

impl PgStore {
    /// Idempotent bootstrap as an administrator (`natterjack db init --admin-url`): creates or
    /// converges the owner role and the app role (names and passwords from the `owner` and
    /// `app` options), the database they name (owned by the owner role), and the
    /// permissions around them: CONNECT on the database and USAGE on schema `public` for the
    /// app role, nothing for PUBLIC. Passwords travel as SCRAM-SHA-256 verifiers, never in
    /// plain text. Returns what it did or found, one line per fact, for the operator.
    pub async fn init(
        admin: &PgTarget,
        owner: &PgTarget,
        app: &PgTarget,
    ) -> Result<Vec<String>, StoreError> {
        let names = Names::of(admin, owner, app)?;
        let owner_password = super::options::password_of(owner)?;
        let app_password = super::options::password_of(app)?;
        // Refuse an unusable password before anything is created.
        for password in [&owner_password, &app_password].into_iter().flatten() {
            scram::check_password(password)?;
        }

        let mut report = Vec::new();
        let mut conn = admin.connect().await.map_err(classify)?;
        let outcome = async {
            report.extend(
                roles::ensure(
                    &mut conn,
                    roles::Kind::Owner,
                    &names.owner,
                    owner_password.as_deref(),
                )
                .await?,
            );
            report.extend(
                roles::ensure(
                    &mut conn,
                    roles::Kind::App,
                    &names.app,
                    app_password.as_deref(),
                )
                .await?,
            );
            report.extend(
                database::ensure(&mut conn, &names.database, &names.owner, &names.app).await?,
            );
            Ok::<_, StoreError>(())
        }
        .await;
        let _ = conn.close().await;
        outcome?;

        let mut inside = admin
            .options()
            .clone()
            .database(names.database.as_str())
            .connect()
            .await
            .map_err(classify)?;
        let outcome = database::lock_down_schema(&mut inside, &names.owner, &names.app).await;
        let _ = inside.close().await;
        report.extend(outcome?);
        Ok(report)
    }

    /// Runs pending migrations as the owner role (one migrator at a time, under an advisory
    /// lock), then (re)applies the app role's grants, so that they converge on every run.
    /// Plaintext rows are sealed with `keyring` on the way to schema 7, and the
    /// configured key-encryption key must open every data key.
    pub async fn migrate(
        owner: &PgTarget,
        app_role: &str,
        keyring: &Keyring,
    ) -> Result<Migrated, StoreError> {
        let app = Identifier::role("app role", app_role)?;
        if owner.get_username() == app.as_str() {
            return Err(refuse(format!(
                "refusing to migrate as the app role {app}: migrations run as the owner role"
            )));
        }
        let mut conn = owner.connect().await.map_err(classify)?;
        let outcome = migrate::run(&mut conn, &app, keyring).await;
        let _ = conn.close().await;
        outcome
    }

    /// The database's data keys (none before schema 6), read as the role `options` names:
    /// a missing key-encryption key may be generated only when there are none.
    pub async fn stored_data_keys(
        options: &PgTarget,
    ) -> Result<Vec<crate::sealing::DataKeyRow>, StoreError> {
        let mut conn = options.connect().await.map_err(classify)?;
        let outcome = async {
            let table: bool =
                sqlx::query_scalar("SELECT to_regclass('public.data_keys') IS NOT NULL")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(classify)?;
            if table {
                sealed::data_keys(&mut conn).await
            } else {
                Ok(Vec::new())
            }
        }
        .await;
        let _ = conn.close().await;
        outcome
    }

    /// Makes a new data key current, as the owner role (see the SQLite backend's
    /// `rotate_key`). Returns its id.
    pub async fn rotate_key(owner: &PgTarget, keyring: &Keyring) -> Result<u32, StoreError> {
        let mut conn = owner.connect().await.map_err(classify)?;
        let outcome = async {
            sealed::load(&mut conn, keyring).await?;
            let mut tx = conn.begin().await.map_err(classify)?;
            sqlx::query("LOCK TABLE data_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            let id = sealed::add_current_key(&mut tx, keyring).await?;
            tx.commit().await.map_err(classify)?;
            Ok(id)
        }
        .await;
        let _ = conn.close().await;
        outcome
    }

    /// Erases a retired data key as the owner role, refused while any row uses it.
    pub async fn destroy_key(owner: &PgTarget, key: u32) -> Result<(), StoreError> {
        let mut conn = owner.connect().await.map_err(classify)?;
        let outcome = sealed::destroy_key(&mut conn, key).await;
        let _ = conn.close().await;
        outcome
    }

    /// Re-wraps every data key with `next`, as the owner role. Returns how many.
    pub async fn rewrap_keys(
        owner: &PgTarget,
        keyring: &Keyring,
        next: &KeyEncryptionKey,
    ) -> Result<usize, StoreError> {
        let mut conn = owner.connect().await.map_err(classify)?;
        let outcome = async {
            sealed::load(&mut conn, keyring).await?;
            sealed::rewrap(&mut conn, keyring, next).await
        }
        .await;
        let _ = conn.close().await;
        outcome
    }

    /// Opens the server's pool as the app role. Refuses (`Internal`, with a message for the
    /// operator) when the role holds more than the app role's grants (see
    /// [`check_least_privilege`](super::check_least_privilege)) or when the schema is not at
    /// the version this build expects, so a server never runs with too much power or a
    /// half-migrated schema.
    ///
    /// Once open, the pool survives the database going away: connections are made lazily
    /// and tested before use, so queries fail `Unavailable` while it is down and service
    /// resumes by itself when it returns.
    pub async fn open(
        app: &PgTarget,
        max_connections: u32,
        acquire_timeout: Duration,
        keyring: Arc<Keyring>,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(true)
            .connect_with(app.options().clone())
            .await
            .map_err(classify)?;
        if let Err(e) = Self::check(&pool, &keyring).await {
            pool.close().await;
            return Err(e);
        }
        Ok(Self {
            pool,
            target: Arc::new(app.clone()),
            keyring,
            ids: Arc::new(crate::ids::IdBlocks::default()),
        })
    }

    async fn check(pool: &PgPool, keyring: &Keyring) -> Result<(), StoreError> {
        let mut conn = pool.acquire().await.map_err(classify)?;
        privileges::check_least_privilege(&mut conn).await?;
        let version = migrate::current_version(&mut conn).await?;
        if version != migrate::latest_version() {
            return Err(refuse(format!(
                "database schema is at version {version}, this build needs {}: run `natterjack migrate`",
                migrate::latest_version()
            )));
        }
        sealed::load(&mut conn, keyring).await?;
        if keyring.current().is_none() {
            return Err(refuse(
                "the database holds no current data key: run `natterjack migrate`",
            ));
        }
        Ok(())
    }

    /// The way this store's pool connects (the app role's), for connections of their own:
    /// `LISTEN` and export leases.
    pub(crate) fn target(&self) -> &PgTarget {
        &self.target
    }

    /// The keyring sealing this store's content.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The ids this store holds reserved.
    pub(crate) fn ids(&self) -> &crate::ids::IdBlocks {
        &self.ids
    }

    /// Cheap liveness query (`SELECT 1`) for readiness probes: `Unavailable` when the
    /// database cannot be reached.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// The server's pool, as the app role. Exposed for the least-privilege tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
