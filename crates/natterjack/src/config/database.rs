//! `[database]`: which backend, the URLs of its roles (secrets, possibly read from files), the
//! pool and the read cache in front of it. Resolving the settings into a [`DatabaseTarget`] lives here too, so the rules
//! that refuse a mixed or malformed database configuration sit beside the settings they read.

use super::error::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` (default `sqlite:<data_dir>/natterjack.db`) or `postgres://APP_ROLE@HOST/DB`:
    /// what `serve` and the `user` commands connect as. A secret (it may hold a password), so
    /// it never appears in `Debug` output, and it can come from a file instead (`url_file`).
    pub url: Option<SecretString>,
    /// A file holding `url` (for secrets mounted as files).
    pub url_file: Option<PathBuf>,
    /// PostgreSQL only: `postgres://OWNER_ROLE@HOST/DB`, the role that owns the schema.
    /// Only `migrate` and `db init` use it; `serve` never needs it.
    pub owner_url: Option<SecretString>,
    /// A file holding `owner_url`.
    pub owner_url_file: Option<PathBuf>,
    /// PostgreSQL only: the CA certificates (PEM) that alone verify the server, for
    /// `sslmode=verify-full` (or `verify-ca`) in the URLs: they replace the public roots, so
    /// that a public CA's certificate for the database's name is not trusted.
    pub ca_file: Option<PathBuf>,
    /// Connections in the server's pool. Default 8.
    pub max_connections: u32,
    /// PostgreSQL only: how long a request waits for a connection before it gets 503, in
    /// milliseconds. Default 2000.
    pub acquire_timeout_ms: u64,
    /// The longest `serve` answers a user row or a membership from memory after reading
    /// it, in milliseconds; the bound on staleness should a change notification be lost on
    /// a PostgreSQL connection that looks alive. 0 switches the read cache off. Default
    /// 5000.
    pub cache_max_age_ms: u64,
    /// SQLite only: how often `serve` reads the counter that every change to users and
    /// memberships moves, in milliseconds: the bound on how long a change made by another
    /// process (the operator's CLI) takes to reach the server's read cache. Default 10.
    pub cache_poll_ms: u64,
    /// Entries in the read cache (user rows, linked identities and memberships together).
    /// Default 10000.
    pub cache_capacity: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            owner_url: None,
            owner_url_file: None,
            ca_file: None,
            max_connections: 8,
            acquire_timeout_ms: 2000,
            cache_max_age_ms: 5000,
            cache_poll_ms: 10,
            cache_capacity: 10_000,
        }
    }
}

/// The database a configuration names.
pub enum DatabaseTarget {
    /// The embedded default: an SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres {
        /// The app role's URL (`database.url`).
        url: SecretString,
        /// The owner role's URL (`database.owner_url`), when configured.
        owner_url: Option<SecretString>,
        /// The CA that verifies the server.
        ca_file: Option<PathBuf>,
    },
}

/// Reads a secret from the setting or from the file that holds it; at most one may be set.
fn secret_setting(
    name: &str,
    value: Option<&SecretString>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "give database.{name} or database.{name}_file, not both"
        ))),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(|text| Some(SecretString::from(text.trim().to_owned())))
            .map_err(|e| {
                ConfigError(format!(
                    "cannot read database.{name}_file {}: {e}",
                    file.display()
                ))
            }),
        (None, None) => Ok(None),
    }
}

impl DatabaseConfig {
    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("database.max_connections", u64::from(self.max_connections)),
            ("database.acquire_timeout_ms", self.acquire_timeout_ms),
            ("database.cache_capacity", self.cache_capacity as u64),
            ("database.cache_poll_ms", self.cache_poll_ms),
        ]
    }

    /// The database these settings name: `url` (or its file) decides; without one, the
    /// SQLite file `natterjack.db` in `data_dir`.
    pub(super) fn target(&self, data_dir: &Path) -> Result<DatabaseTarget, ConfigError> {
        let url = secret_setting("url", self.url.as_ref(), self.url_file.as_deref())?;
        let owner_url = secret_setting(
            "owner_url",
            self.owner_url.as_ref(),
            self.owner_url_file.as_deref(),
        )?;
        let Some(url) = url else {
            return self.sqlite_only(owner_url, data_dir.join("natterjack.db"));
        };
        let text = url.expose_secret();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            if owner_url.as_ref().is_some_and(|o| {
                let o = o.expose_secret();
                !(o.starts_with("postgres://") || o.starts_with("postgresql://"))
            }) {
                return Err(ConfigError(
                    "database.owner_url: expected postgres://OWNER_ROLE@HOST/DB".into(),
                ));
            }
            return Ok(DatabaseTarget::Postgres {
                url,
                owner_url,
                ca_file: self.ca_file.clone(),
            });
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .filter(|path| !path.is_empty() && !path.contains('?'))
            .map(PathBuf::from)
            .ok_or_else(|| {
                ConfigError(
                    "database.url: expected sqlite:PATH (no query options) or postgres://ROLE@HOST/DB"
                        .into(),
                )
            })?;
        self.sqlite_only(owner_url, path)
    }

    fn sqlite_only(
        &self,
        owner_url: Option<SecretString>,
        path: PathBuf,
    ) -> Result<DatabaseTarget, ConfigError> {
        if owner_url.is_some() || self.ca_file.is_some() {
            return Err(ConfigError(
                "database.owner_url and database.ca_file apply to PostgreSQL only; database.url names SQLite"
                    .into(),
            ));
        }
        Ok(DatabaseTarget::Sqlite(path))
    }
}
