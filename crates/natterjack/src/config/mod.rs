//! Configuration: a TOML file, then `NATTERJACK_` environment variables, then flags.
//!
//! Every section refuses unknown keys, so a misspelt setting is an error naming the key
//! instead of a silently ignored control. Sections mirror the pipeline.

mod audit;
mod grpc;

pub use audit::{AlertsConfig, AuditConfig, SinkConfig, SinkKind};

pub use grpc::{GrpcConfig, InternalConfig};
pub use natterjack_api::pipeline::rate_limit::RateLimitConfig;
use natterjack_core::auth::HashingParams;
use natterjack_core::policy::GrantPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, certificates and keys live.
    pub data_dir: PathBuf,
    /// The REST listener.
    pub rest: RestConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Access control.
    pub access: AccessConfig,
    /// Rate limiting.
    pub rate_limit: RateLimitConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// The public gRPC listener.
    pub grpc: GrpcConfig,
    /// The internal listener.
    pub internal: InternalConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            rest: RestConfig::default(),
            tls: TlsConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            access: AccessConfig::default(),
            rate_limit: RateLimitConfig::default(),
            audit: AuditConfig::default(),
            grpc: GrpcConfig::default(),
            internal: InternalConfig::default(),
        }
    }
}

/// `[rest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestConfig {
    /// Listen address (port 0: any free port). Default 127.0.0.1:8443.
    pub listen: SocketAddr,
    /// Whole-request time limit in seconds (408 beyond). Default 30.
    pub request_timeout_secs: u64,
    /// Simultaneous connections; at the cap the idlest is evicted. Default 1024.
    pub max_connections: usize,
    /// Simultaneous connections per client address (IPv6: per /64); trusted proxies are
    /// exempt. Default 64.
    pub max_connections_per_client: usize,
    /// TLS handshake time limit in seconds. Default 10.
    pub handshake_timeout_secs: u64,
    /// Time limit for a request head, in seconds: the first one counts from the end of the
    /// handshake. Default 10.
    pub header_read_timeout_secs: u64,
    /// An HTTP/1.1 connection idle this long between requests is closed. Default 75.
    pub keep_alive_timeout_secs: u64,
    /// An HTTP/2 connection with no open stream this long gets GOAWAY. Default 180.
    pub http2_idle_timeout_secs: u64,
    /// Concurrent HTTP/2 streams per connection. Default 100.
    pub max_concurrent_streams: u32,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            request_timeout_secs: 30,
            max_connections: 1024,
            max_connections_per_client: 64,
            handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            keep_alive_timeout_secs: 75,
            http2_idle_timeout_secs: 180,
            max_concurrent_streams: 100,
        }
    }
}

/// `[tls]`: without `cert` and `key`, a development CA and certificate are generated in the
/// data directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: Option<PathBuf>,
    /// PEM private key of the server (keep it 0600).
    pub key: Option<PathBuf>,
}

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
    /// PostgreSQL only: the CA certificate (PEM) that verifies the server, for
    /// `sslmode=verify-full` (or `verify-ca`) in the URLs.
    pub ca_file: Option<PathBuf>,
    /// Connections in the server's pool. Default 8.
    pub max_connections: u32,
    /// PostgreSQL only: how long a request waits for a connection before it gets 503, in
    /// milliseconds. Default 2000.
    pub acquire_timeout_ms: u64,
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

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether anonymous clients may create accounts with `POST /users`. Default true.
    pub self_registration: bool,
    /// Argon2id cost; refused below the OWASP minimum.
    pub argon2: HashingParams,
    /// Password hashes computed at once; more wait, then get 503. Default 4.
    pub max_concurrent_hashes: usize,
    /// How long a login may wait for a hashing slot, in milliseconds. Default 1000.
    pub hash_queue_wait_ms: u64,
    /// How long a successful verification is remembered, in seconds; 0 switches the cache
    /// off. Default 60.
    pub cache_ttl_secs: u64,
    /// Entries in the verification cache. Default 10000.
    pub cache_capacity: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            self_registration: true,
            argon2: HashingParams::default(),
            max_concurrent_hashes: 4,
            hash_queue_wait_ms: 1000,
            cache_ttl_secs: 60,
            cache_capacity: 10_000,
        }
    }
}

impl Config {
    /// The audit key file.
    pub fn audit_key_path(&self) -> PathBuf {
        self.audit
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.key"))
    }

    /// The Admin socket.
    pub fn admin_socket_path(&self) -> PathBuf {
        self.internal
            .admin_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.sock"))
    }

    /// The audit head anchor file.
    pub fn audit_head_path(&self) -> PathBuf {
        self.audit
            .head_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.head"))
    }
}

/// `[access]`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// `full-only` (default) or `subset`: see the escalation rule.
    pub grant_policy: GrantPolicy,
}

/// `NATTERJACK_*` variables that stand for a command's flag (see `cli.rs`), not for a
/// setting: the settings loader skips them instead of refusing them as unknown keys.
pub const COMMAND_VARIABLES: &[&str] = &["NATTERJACK_DB_ADMIN_URL"];

/// Command-line values that override the file and the environment.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `serve --listen`.
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Loads the file (if any), then the environment, then the overrides.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "no configuration file at {}",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        // Variables that belong to one command's flags (clap reads them), not to the file.
        let settings_only = std::env::vars()
            .filter(|(name, _)| !COMMAND_VARIABLES.contains(&name.as_str()))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("NATTERJACK")
                .source(Some(settings_only))
                .list_separator(",")
                .with_list_parse_key("rate_limit.trusted_proxies")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
        );
        let mut cfg: Config = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError(e.to_string()))?;
        if let Some(dir) = overrides.data_dir {
            cfg.data_dir = dir;
        }
        if let Some(listen) = overrides.listen {
            cfg.rest.listen = listen;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.auth.argon2.check().map_err(ConfigError)?;
        natterjack_api::pipeline::rate_limit::RateLimits::new(&self.rate_limit)
            .map_err(ConfigError)?;
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError(
                "tls.cert and tls.key must be given together".into(),
            ));
        }
        let must_be_positive = [
            ("rest.request_timeout_secs", self.rest.request_timeout_secs),
            (
                "rest.handshake_timeout_secs",
                self.rest.handshake_timeout_secs,
            ),
            (
                "rest.header_read_timeout_secs",
                self.rest.header_read_timeout_secs,
            ),
            ("rest.max_connections", self.rest.max_connections as u64),
            (
                "rest.max_connections_per_client",
                self.rest.max_connections_per_client as u64,
            ),
            (
                "rest.keep_alive_timeout_secs",
                self.rest.keep_alive_timeout_secs,
            ),
            (
                "rest.http2_idle_timeout_secs",
                self.rest.http2_idle_timeout_secs,
            ),
            (
                "rest.max_concurrent_streams",
                u64::from(self.rest.max_concurrent_streams),
            ),
            (
                "database.max_connections",
                u64::from(self.database.max_connections),
            ),
            (
                "database.acquire_timeout_ms",
                self.database.acquire_timeout_ms,
            ),
            (
                "auth.max_concurrent_hashes",
                self.auth.max_concurrent_hashes as u64,
            ),
            ("auth.cache_capacity", self.auth.cache_capacity as u64),
        ];
        if let Some((key, _)) = must_be_positive
            .iter()
            .copied()
            .chain(self.grpc.positive())
            .find(|(_, v)| *v == 0)
        {
            return Err(ConfigError(format!("{key} must be at least 1")));
        }
        for (listener, per_client, max) in [
            (
                "rest",
                self.rest.max_connections_per_client,
                self.rest.max_connections,
            ),
            (
                "grpc",
                self.grpc.max_connections_per_client,
                self.grpc.max_connections,
            ),
        ] {
            if per_client > max {
                return Err(ConfigError(format!(
                    "{listener}.max_connections_per_client ({per_client}) must not exceed \
                     {listener}.max_connections ({max}): one address could hold the whole listener"
                )));
            }
        }
        if !self.internal.listen.ip().is_loopback() {
            return Err(ConfigError(format!(
                "internal.listen must be a loopback address (it is plaintext), not {}",
                self.internal.listen
            )));
        }
        if self.tls.cert.is_some() && self.grpc.enabled && self.grpc.client_ca.is_none() {
            return Err(ConfigError(
                "grpc.client_ca is required with production certificates ([tls] cert and key): \
                 name the CA that issues client certificates, or set grpc.enabled = false"
                    .into(),
            ));
        }
        self.audit.check()?;
        self.database()?;
        Ok(())
    }

    /// The database this configuration names: `database.url` (or its file) decides.
    pub fn database(&self) -> Result<DatabaseTarget, ConfigError> {
        let db = &self.database;
        let url = secret_setting("url", db.url.as_ref(), db.url_file.as_deref())?;
        let owner_url = secret_setting(
            "owner_url",
            db.owner_url.as_ref(),
            db.owner_url_file.as_deref(),
        )?;
        let Some(url) = url else {
            return self.sqlite_only(owner_url, self.data_dir.join("natterjack.db"));
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
                ca_file: db.ca_file.clone(),
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
        if owner_url.is_some() || self.database.ca_file.is_some() {
            return Err(ConfigError(
                "database.owner_url and database.ca_file apply to PostgreSQL only; database.url names SQLite"
                    .into(),
            ));
        }
        Ok(DatabaseTarget::Sqlite(path))
    }
}
