//! Configuration: a TOML file, then `NATTERJACK_` environment variables, then flags.
//!
//! Every section refuses unknown keys, so a misspelt setting is an error naming the key
//! instead of a silently ignored control. Sections mirror the pipeline.

pub use natterjack_api::pipeline::rate_limit::RateLimitConfig;
use natterjack_core::auth::HashingParams;
use natterjack_core::policy::GrantPolicy;
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
    /// Simultaneous connections. Default 1024.
    pub max_connections: usize,
    /// TLS handshake time limit in seconds. Default 10.
    pub handshake_timeout_secs: u64,
    /// Time limit for receiving request headers, in seconds. Default 10.
    pub header_read_timeout_secs: u64,
    /// Concurrent HTTP/2 streams per connection. Default 100.
    pub max_concurrent_streams: u32,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            request_timeout_secs: 30,
            max_connections: 1024,
            handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
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
    /// `sqlite:PATH`; default `sqlite:<data_dir>/natterjack.db`. May hold credentials in
    /// other backends, so it can come from a file instead (`url_file`).
    pub url: Option<String>,
    /// A file holding the URL (for secrets mounted as files).
    pub url_file: Option<PathBuf>,
    /// Connections in the server's pool. Default 8.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            max_connections: 8,
        }
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

/// `[audit]`: where the chain's secrets live, outside the database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The HMAC key of the chain (64 hex digits, 0600); default `<data_dir>/audit.key`,
    /// created on first start.
    pub key_file: Option<PathBuf>,
    /// The anchored chain head (0600); default `<data_dir>/audit.head`.
    pub head_file: Option<PathBuf>,
}

impl Config {
    /// The audit key file.
    pub fn audit_key_path(&self) -> PathBuf {
        self.audit
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.key"))
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
        builder = builder.add_source(
            config::Environment::with_prefix("NATTERJACK")
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
                "rest.max_concurrent_streams",
                u64::from(self.rest.max_concurrent_streams),
            ),
            (
                "database.max_connections",
                u64::from(self.database.max_connections),
            ),
            (
                "auth.max_concurrent_hashes",
                self.auth.max_concurrent_hashes as u64,
            ),
            ("auth.cache_capacity", self.auth.cache_capacity as u64),
        ];
        if let Some((key, _)) = must_be_positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError(format!("{key} must be at least 1")));
        }
        if self.database.url.is_some() && self.database.url_file.is_some() {
            return Err(ConfigError(
                "give database.url or database.url_file, not both".into(),
            ));
        }
        Ok(())
    }

    /// The SQLite database file this configuration names.
    pub fn sqlite_path(&self) -> Result<PathBuf, ConfigError> {
        let url = match (&self.database.url, &self.database.url_file) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(file)) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        ConfigError(format!(
                            "cannot read database.url_file {}: {e}",
                            file.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        match url {
            None => Ok(self.data_dir.join("natterjack.db")),
            Some(url) => url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .filter(|path| !path.is_empty() && !path.contains('?'))
                .map(PathBuf::from)
                .ok_or_else(|| {
                    ConfigError(
                        "database.url: expected sqlite:PATH (no query options); only SQLite is supported by this build".into(),
                    )
                }),
        }
    }
}
