//! Opening one connection to the directory: TCP, then TLS (LDAPS) or StartTLS, all within
//! the connect timeout, with every later operation bounded by the operation timeout.

use super::endpoint::{Endpoint, Transport};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, StdStream};
use secrecy::{ExposeSecret, SecretString};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Everything needed to open a protected connection to the directory.
pub(crate) struct Connector {
    /// Where, and whether TLS is direct or StartTLS.
    endpoint: Endpoint,
    /// The roots the directory's certificate is checked against (never disabled).
    tls: Arc<rustls::ClientConfig>,
    /// Bound on TCP connect plus the TLS (or StartTLS) handshake.
    connect_timeout: Duration,
    /// Bound on each operation.
    operation_timeout: Duration,
}

impl Connector {
    /// A connector for `endpoint` trusting `tls`'s roots.
    pub(crate) fn new(
        endpoint: Endpoint,
        tls: Arc<rustls::ClientConfig>,
        connect_timeout: Duration,
        operation_timeout: Duration,
    ) -> Self {
        Self {
            endpoint,
            tls,
            connect_timeout,
            operation_timeout,
        }
    }

    /// The bound on one operation, also used for waits on the pool.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// Opens a fresh connection, TLS negotiated (unless plaintext loopback was allowed),
    /// its I/O driven by a spawned task that ends when the last handle is dropped.
    pub(crate) async fn connect(&self) -> Result<Ldap, LdapError> {
        // The TCP connection is opened here, with Nagle's algorithm off: otherwise the bind
        // request, a small write right after the TLS handshake, waits for the directory's
        // delayed ACK, about 40 ms on every login. ldap3 applies what is left of the connect
        // timeout to the StartTLS operation and the TLS handshake. Without `set_config` it
        // would build its own rustls configuration; `set_no_tls_verify` is never used.
        let started = tokio::time::Instant::now();
        let address = self
            .endpoint
            .url
            .split_once("://")
            .map_or(self.endpoint.url.as_str(), |(_, rest)| rest);
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            .map_err(|source| LdapError::Io { source })?
            .map_err(|source| LdapError::Io { source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| LdapError::Io { source })?;
        let stream = stream
            .into_std()
            .map_err(|source| LdapError::Io { source })?;
        let left = self
            .connect_timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        let settings = LdapConnSettings::new()
            .set_std_stream(StdStream::Tcp(stream))
            .set_conn_timeout(left)
            .set_config(Arc::clone(&self.tls))
            .set_starttls(self.endpoint.transport == Transport::StartTls);
        let (connection, ldap) = LdapConnAsync::with_settings(settings, &self.endpoint.url).await?;
        let url = self.endpoint.url.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.drive().await {
                tracing::debug!(%url, %error, "LDAP connection ended with an error");
            }
        });
        Ok(ldap)
    }

    /// A simple bind on `ldap` as `dn`, bounded by the operation timeout. The result code is
    /// the caller's to judge (49 is a refused password).
    pub(crate) async fn simple_bind(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        password: &SecretString,
    ) -> Result<LdapResult, LdapError> {
        ldap.with_timeout(self.operation_timeout)
            .simple_bind(dn, password.expose_secret())
            .await
    }

    /// Opens a fresh connection, binds it as `dn`, and closes it: a bind changes the
    /// connection's identity, so a password is never checked on a pooled connection.
    pub(crate) async fn bind_once(
        &self,
        dn: &str,
        password: &SecretString,
    ) -> Result<LdapResult, LdapError> {
        let mut ldap = self.connect().await?;
        let result = self.simple_bind(&mut ldap, dn, password).await;
        // Unbind only closes the socket; its failure changes nothing about the answer.
        let _ = ldap.with_timeout(self.operation_timeout).unbind().await;
        result
    }
}
