//! What a role connects to, and how: sqlx's connection options, and, when
//! `database.ca_file` is set, the TLS forwarder those options point at, held for as long as
//! the options may be used.

use super::errors::refuse;
use super::tls::{self, Check, TlsForwarder, Upstream};
use natterjack_core::ports::StoreError;
use rustls::pki_types::ServerName;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// A role's way to the database. Every PostgreSQL connection of Natterjack is made from one:
/// the pool, the owner's and administrator's connections, the `LISTEN` connections and the
/// export leases. With `database.ca_file`, its options lead to an in-process forwarder that
/// runs the TLS handshake trusting that file alone (sqlx would add the file to the public
/// roots), and every clone keeps the forwarder alive.
///
/// It reads as the options it wraps (`Deref`), so the role, database and host are asked of
/// it as of sqlx's options.
#[derive(Clone)]
pub struct PgTarget {
    options: PgConnectOptions,
    forwarder: Option<Arc<TlsForwarder>>,
}

impl PgTarget {
    /// The options as parsed, when `database.ca_file` does not apply: sqlx connects itself.
    pub fn direct(options: PgConnectOptions) -> Self {
        Self {
            options,
            forwarder: None,
        }
    }

    /// The options for `ca_file`. Under `sslmode=verify-full` or `verify-ca` they lead to a
    /// new forwarder that trusts the file's certificates alone (and, under `verify-full`,
    /// checks the URL's host name); the connection itself is then sqlx's plaintext to the
    /// forwarder's private socket. Under a weaker `sslmode` the file is not used, as libpq
    /// does not use `sslrootcert` there. Needs the Tokio runtime.
    pub(crate) fn with_ca_file(
        options: PgConnectOptions,
        ca_file: &Path,
    ) -> Result<Self, StoreError> {
        let check = match options.get_ssl_mode() {
            PgSslMode::VerifyFull => Check::Full,
            PgSslMode::VerifyCa => Check::ChainOnly,
            _ => return Ok(Self::direct(options)),
        };
        if options.get_socket().is_some() || options.get_host().starts_with('/') {
            return Err(refuse(
                "the database URL names a Unix socket, but sslmode=verify-full or verify-ca asks for TLS, which PostgreSQL offers on TCP only",
            ));
        }
        let host = options.get_host().to_owned();
        let name = ServerName::try_from(host.clone()).map_err(|_| {
            refuse(format!(
                "the database host {host} is neither a DNS name nor an IP address, so its certificate cannot be checked"
            ))
        })?;
        let forwarder = TlsForwarder::start(Upstream {
            host,
            port: options.get_port(),
            name,
            config: tls::client_config(ca_file, check)?,
        })?;
        let options = options.ssl_mode(PgSslMode::Disable).socket(forwarder.dir());
        Ok(Self {
            options,
            forwarder: Some(Arc::new(forwarder)),
        })
    }

    /// sqlx's options for this target. Connections made from them work while this target
    /// (or a clone) is alive.
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// Whether connections pass through the forwarder (TLS trusting `database.ca_file`
    /// alone), rather than sqlx's own TLS.
    pub fn trusts_ca_file_alone(&self) -> bool {
        self.forwarder.is_some()
    }

    /// The same target with its options changed (`application_name`, server settings): the
    /// forwarder stays.
    pub(crate) fn map(self, f: impl FnOnce(PgConnectOptions) -> PgConnectOptions) -> Self {
        Self {
            options: f(self.options),
            forwarder: self.forwarder,
        }
    }
}

/// Names the role, host and port, never the password.
impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("username", &self.options.get_username())
            .field("host", &self.options.get_host())
            .field("port", &self.options.get_port())
            .field("database", &self.options.get_database())
            .field("trusts_ca_file_alone", &self.trusts_ca_file_alone())
            .finish()
    }
}

impl From<PgConnectOptions> for PgTarget {
    fn from(options: PgConnectOptions) -> Self {
        Self::direct(options)
    }
}

impl Deref for PgTarget {
    type Target = PgConnectOptions;

    fn deref(&self) -> &PgConnectOptions {
        &self.options
    }
}
