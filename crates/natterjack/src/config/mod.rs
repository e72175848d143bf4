//! Configuration: a TOML file, then `NATTERJACK_` environment variables, then flags.
//!
//! Every section refuses unknown keys, so a misspelt setting is an error naming the key
//! instead of a silently ignored control. Sections mirror the pipeline, and each has its own
//! file here; this module assembles them, loads them and checks what spans sections.

mod access;
mod audit;
mod auth;
mod console;
mod database;
mod encryption;
mod error;
mod grpc;
mod internal;
mod rest;
mod shutdown;
mod tls;

pub use access::AccessConfig;
pub use audit::{AlertsConfig, AuditConfig, SinkConfig, SinkKind};
pub use auth::AuthConfig;
pub use console::ConsoleConfig;
pub use database::{DatabaseConfig, DatabaseTarget};
pub use encryption::EncryptionConfig;
pub use error::ConfigError;
pub use grpc::GrpcConfig;
pub use internal::InternalConfig;
pub use natterjack_api::pipeline::rate_limit::RateLimitConfig;
pub use rest::RestConfig;
use serde::Deserialize;
pub use shutdown::ShutdownConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
pub use tls::TlsConfig;

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
    /// Encryption at rest.
    pub encryption: EncryptionConfig,
    /// What happens on SIGTERM: the drain, then the deadline.
    pub shutdown: ShutdownConfig,
    /// The browser console: sessions, the origin of its forms, single sign-on.
    pub console: ConsoleConfig,
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
            encryption: EncryptionConfig::default(),
            shutdown: ShutdownConfig::default(),
            console: ConsoleConfig::default(),
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

    /// The key-encryption key file when no other source is configured.
    pub fn encryption_key_path(&self) -> PathBuf {
        self.encryption
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("encryption.key"))
    }

    /// The audit head anchor file.
    pub fn audit_head_path(&self) -> PathBuf {
        self.audit
            .head_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.head"))
    }
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
        self.auth.check_sources().map_err(ConfigError)?;
        for issuer in &self.auth.oidc {
            issuer.check().map_err(ConfigError)?;
        }
        natterjack_api::pipeline::rate_limit::RateLimits::new(&self.rate_limit)
            .map_err(ConfigError)?;
        for (key, on) in [
            ("rest.proxy_protocol", self.rest.proxy_protocol),
            ("grpc.proxy_protocol", self.grpc.proxy_protocol),
        ] {
            if on && self.rate_limit.trusted_proxies.is_empty() {
                return Err(ConfigError(format!(
                    "{key} needs rate_limit.trusted_proxies: a PROXY header is read only from those peers"
                )));
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError(
                "tls.cert and tls.key must be given together".into(),
            ));
        }
        if let Some((key, _)) = self
            .rest
            .positive()
            .into_iter()
            .chain(self.database.positive())
            .chain(self.auth.positive())
            .chain(self.grpc.positive())
            .chain(self.encryption.positive())
            .chain(self.tls.positive())
            .chain(self.shutdown.positive())
            .chain(self.console.positive())
            .find(|(_, v)| *v == 0)
        {
            return Err(ConfigError(format!("{key} must be at least 1")));
        }
        self.console.check_public_url().map_err(ConfigError)?;
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
        self.encryption.check().map_err(ConfigError)?;
        self.database()?;
        Ok(())
    }

    /// The database this configuration names: `database.url` (or its file) decides.
    pub fn database(&self) -> Result<DatabaseTarget, ConfigError> {
        self.database.target(&self.data_dir)
    }
}
