//! The configured database, whichever backend it is: SQLite (the embedded default) or
//! PostgreSQL. Everything above this module sees the storage ports only.

use crate::config::{Config, ConfigError, DatabaseTarget};
use crate::data_dir::ensure_data_dir;
use crate::start_error::StartError;
use natterjack_core::audit::{AuditStore, ExportLeases};
use natterjack_core::ports::Store;
use natterjack_storage::postgres::{self, PgTarget};
use natterjack_storage::rotation::Resealing;
use natterjack_storage::sealing::{DataKeyRow, Keyring};
use natterjack_storage::sqlite::SqliteExportLeases;
use natterjack_storage::{Migrated, PgStore, SqliteStore};
use secrecy::ExposeSecret;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

/// An open store of either backend.
#[derive(Clone)]
pub enum Storage {
    /// SQLite, under the authorizer.
    Sqlite(SqliteStore),
    /// PostgreSQL, as the app role.
    Postgres(PgStore),
}

impl Storage {
    /// The store as the service layer's port.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The store as the port of the console's sessions.
    pub fn sessions(&self) -> Arc<dyn natterjack_core::session::SessionStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The store as the audit log's port.
    pub fn audit_store(&self) -> Arc<dyn AuditStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The store as rotation's port.
    pub fn resealing(&self) -> Arc<dyn Resealing> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The export leases of the database, which let one server of several export each
    /// sink: advisory locks on PostgreSQL, lock files beside the database on SQLite.
    pub fn export_leases(&self, cfg: &Config) -> Result<Arc<dyn ExportLeases>, StartError> {
        Ok(match (self, cfg.database()?) {
            (Self::Postgres(pg), _) => Arc::new(pg.export_leases()),
            (Self::Sqlite(_), DatabaseTarget::Sqlite(path)) => {
                Arc::new(SqliteExportLeases::beside(&path))
            }
            (Self::Sqlite(_), DatabaseTarget::Postgres { .. }) => {
                return Err(StartError::Other(
                    "the store is SQLite but the configuration names PostgreSQL".into(),
                ));
            }
        })
    }

    /// The keyring sealing the store's content.
    pub fn keyring(&self) -> Arc<Keyring> {
        match self {
            Self::Sqlite(s) => s.keyring().clone(),
            Self::Postgres(s) => s.keyring().clone(),
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

fn other(e: impl std::fmt::Display) -> StartError {
    StartError::Other(e.to_string())
}

fn options(
    url: &secrecy::SecretString,
    ca_file: Option<&std::path::Path>,
) -> Result<PgTarget, StartError> {
    postgres::connect_options(url.expose_secret(), ca_file).map_err(other)
}

/// The owner role's options, or a message saying where to configure them.
fn owner_options(
    owner_url: Option<&secrecy::SecretString>,
    ca_file: Option<&std::path::Path>,
    command: &str,
) -> Result<PgTarget, StartError> {
    let owner_url = owner_url.ok_or_else(|| {
        StartError::Config(ConfigError(format!(
            "`{command}` on PostgreSQL connects as the schema owner: set database.owner_url \
             (or database.owner_url_file)"
        )))
    })?;
    options(owner_url, ca_file)
}

/// The data keys the database holds already (none for a new database), read before the
/// key-encryption key is loaded so that a missing key is reported against them. On
/// PostgreSQL, as the owner role for `owner_command` (which needs it anyway), else as the
/// app role.
async fn stored_data_keys(
    cfg: &Config,
    owner_command: Option<&str>,
) -> Result<Vec<DataKeyRow>, StartError> {
    match cfg.database()? {
        DatabaseTarget::Sqlite(path) => SqliteStore::stored_data_keys(&path).await.map_err(other),
        DatabaseTarget::Postgres {
            url,
            owner_url,
            ca_file,
        } => {
            let options = match owner_command {
                Some(command) => owner_options(owner_url.as_ref(), ca_file.as_deref(), command)?,
                None => options(&url, ca_file.as_deref())?,
            };
            PgStore::stored_data_keys(&options).await.map_err(other)
        }
    }
}

/// The keyring of a server (or a command acting as one): the key-encryption key the
/// configuration names, with no data key unwrapped yet (the store loads them when it
/// opens).
pub async fn keyring(cfg: &Config) -> Result<Arc<Keyring>, StartError> {
    keyring_for(cfg, None).await
}

/// The keyring of `owner_command` (`migrate`, `keys rotate`, …), which connects to
/// PostgreSQL as the schema owner.
pub async fn keyring_as_owner(
    cfg: &Config,
    owner_command: &str,
) -> Result<Arc<Keyring>, StartError> {
    keyring_for(cfg, Some(owner_command)).await
}

async fn keyring_for(
    cfg: &Config,
    owner_command: Option<&str>,
) -> Result<Arc<Keyring>, StartError> {
    ensure_data_dir(&cfg.data_dir)?;
    let stored = stored_data_keys(cfg, owner_command).await?;
    let kek = crate::encryption_key::load(cfg, &stored).await?;
    Ok(Arc::new(Keyring::new(kek)))
}

/// Applies pending migrations, returning the versions applied. SQLite: on a separate owner
/// connection (the file is created, 0600, on first use). PostgreSQL: as the owner role, then
/// the app role's grants are re-applied. Plaintext rows of an older schema are sealed on
/// the way.
pub async fn migrate(cfg: &Config, keyring: &Keyring) -> Result<Migrated, StartError> {
    match cfg.database()? {
        DatabaseTarget::Sqlite(path) => {
            ensure_data_dir(&cfg.data_dir)?;
            let done = SqliteStore::migrate(&path, keyring).await.map_err(other)?;
            if path.exists() {
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
            }
            Ok(done)
        }
        DatabaseTarget::Postgres {
            url,
            owner_url,
            ca_file,
        } => {
            let app = options(&url, ca_file.as_deref())?;
            let owner = owner_options(owner_url.as_ref(), ca_file.as_deref(), "migrate")?;
            PgStore::migrate(&owner, app.get_username(), keyring)
                .await
                .map_err(other)
        }
    }
}

/// Creates the data directory (it holds keys whatever the backend), migrates where that
/// needs no extra credentials (SQLite), then opens the server's store. PostgreSQL is
/// migrated by `natterjack migrate` as the owner; `serve` only checks that the schema is
/// current and that its own role holds no more than the API needs.
pub async fn prepare(cfg: &Config) -> Result<Storage, StartError> {
    let keyring = keyring(cfg).await?;
    if matches!(cfg.database()?, DatabaseTarget::Sqlite(_)) {
        migrate(cfg, &keyring).await?;
    }
    open(cfg, keyring).await
}

/// Opens the server's store: SQLite under the authorizer, or PostgreSQL as the app role
/// (refused when that role could do more than the API needs).
pub async fn open(cfg: &Config, keyring: Arc<Keyring>) -> Result<Storage, StartError> {
    match cfg.database()? {
        DatabaseTarget::Sqlite(path) => {
            SqliteStore::open(&path, cfg.database.max_connections, keyring)
                .await
                .map(Storage::Sqlite)
                .map_err(other)
        }
        DatabaseTarget::Postgres { url, ca_file, .. } => {
            let app = options(&url, ca_file.as_deref())?;
            PgStore::open(
                &app,
                cfg.database.max_connections,
                Duration::from_millis(cfg.database.acquire_timeout_ms),
                keyring,
            )
            .await
            .map(Storage::Postgres)
            .map_err(other)
        }
    }
}

/// The database as `keys rotate`, `destroy` and `rewrap` change it: the SQLite file, or
/// PostgreSQL as the owner role.
enum KeyAdmin {
    Sqlite(std::path::PathBuf),
    Postgres(Box<PgTarget>),
}

fn key_admin(cfg: &Config, command: &str) -> Result<KeyAdmin, StartError> {
    match cfg.database()? {
        DatabaseTarget::Sqlite(path) => Ok(KeyAdmin::Sqlite(path)),
        DatabaseTarget::Postgres {
            owner_url, ca_file, ..
        } => owner_options(owner_url.as_ref(), ca_file.as_deref(), command)
            .map(|owner| KeyAdmin::Postgres(Box::new(owner))),
    }
}

/// Makes a new data key current; returns its id.
pub async fn rotate_key(cfg: &Config, keyring: &Keyring) -> Result<u32, StartError> {
    match key_admin(cfg, "keys rotate")? {
        KeyAdmin::Sqlite(path) => SqliteStore::rotate_key(&path, keyring).await,
        KeyAdmin::Postgres(owner) => PgStore::rotate_key(&owner, keyring).await,
    }
    .map_err(other)
}

/// Erases a retired data key that seals nothing.
pub async fn destroy_key(cfg: &Config, key: u32) -> Result<(), StartError> {
    match key_admin(cfg, "keys destroy")? {
        KeyAdmin::Sqlite(path) => SqliteStore::destroy_key(&path, key).await,
        KeyAdmin::Postgres(owner) => PgStore::destroy_key(&owner, key).await,
    }
    .map_err(other)
}

/// Re-wraps every data key with `next`; returns how many.
pub async fn rewrap_keys(
    cfg: &Config,
    keyring: &Keyring,
    next: &natterjack_storage::sealing::KeyEncryptionKey,
) -> Result<usize, StartError> {
    match key_admin(cfg, "keys rewrap")? {
        KeyAdmin::Sqlite(path) => SqliteStore::rewrap_keys(&path, keyring, next).await,
        KeyAdmin::Postgres(owner) => PgStore::rewrap_keys(&owner, keyring, next).await,
    }
    .map_err(other)
}

/// `backup FILE`: a consistent, sealed copy of the SQLite database, made 0600 from the
/// first byte. Returns the data keys the copy needs, for the operator.
pub async fn backup(cfg: &Config, target: &std::path::Path) -> Result<Vec<DataKeyRow>, StartError> {
    let DatabaseTarget::Sqlite(path) = cfg.database()? else {
        return Err(StartError::Other(
            "on PostgreSQL, back up with pg_dump as the owner role: the sealed columns stay              sealed in the dump (see docs/OPERATIONS.md)"
                .into(),
        ));
    };
    if !path.exists() {
        return Err(StartError::Other(format!(
            "no database at {}",
            path.display()
        )));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .map_err(|e| StartError::Other(format!("cannot create {}: {e}", target.display())))?;
    if let Err(e) = SqliteStore::backup(&path, target).await {
        let _ = fs::remove_file(target);
        return Err(other(e));
    }
    SqliteStore::stored_data_keys(target).await.map_err(other)
}

/// `db init`: creates (or converges) the owner and app roles, the database and its
/// permissions, as a PostgreSQL administrator. Returns what it did, a line per step.
pub async fn init(
    cfg: &Config,
    admin_url: &secrecy::SecretString,
) -> Result<Vec<String>, StartError> {
    let DatabaseTarget::Postgres {
        url,
        owner_url,
        ca_file,
    } = cfg.database()?
    else {
        return Err(StartError::Config(ConfigError(
            "`db init` prepares PostgreSQL: set database.url to postgres://APP_ROLE@HOST/DB \
             (SQLite needs no preparation)"
                .into(),
        )));
    };
    let admin = options(admin_url, ca_file.as_deref())?;
    let owner = owner_options(owner_url.as_ref(), ca_file.as_deref(), "db init")?;
    let app = options(&url, ca_file.as_deref())?;
    PgStore::init(&admin, &owner, &app).await.map_err(other)
}
