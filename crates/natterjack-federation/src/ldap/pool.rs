//! A small pool of connections bound as the service account, used only for searches (a
//! user's bind never happens on them). At most `pool_size` exist at once; a connection that
//! failed is dropped instead of returned, so a directory that comes back is reconnected to
//! on the next use without a restart.

use super::connection::Connector;
use ldap3::Ldap;
use secrecy::SecretString;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Service-account connections for searches.
pub(crate) struct ServicePool {
    /// Opens the connections.
    connector: Arc<Connector>,
    /// The service account's DN.
    bind_dn: String,
    /// The service account's password (never logged).
    bind_password: SecretString,
    /// Connections bound and not in use.
    idle: Mutex<Vec<Ldap>>,
    /// One permit per connection in use.
    permits: Arc<Semaphore>,
    /// `pool_size`: the most connections in use, and the most kept idle.
    size: usize,
}

/// A connection taken from the pool. Dropped, it is closed; [`Pooled::give_back`] returns it
/// after a successful exchange, so a connection interrupted mid-operation (an error, a
/// timeout, the caller giving up) is never reused.
pub(crate) struct Pooled<'a> {
    /// The bound connection.
    pub(crate) ldap: Ldap,
    /// Whether it was opened for an earlier login (and may have gone stale since).
    pub(crate) reused: bool,
    /// The pool it goes back to.
    pool: &'a ServicePool,
    /// Held until the connection is given back or dropped.
    _permit: OwnedSemaphorePermit,
}

impl Pooled<'_> {
    /// The bound on each operation on this connection.
    pub(crate) fn operation_timeout(&self) -> std::time::Duration {
        self.pool.connector.operation_timeout()
    }

    /// Returns the connection to the pool for the next search (or closes it, when the pool
    /// already keeps `pool_size` idle connections).
    pub(crate) fn give_back(mut self) {
        if !self.ldap.is_closed() {
            let ldap = self.ldap.clone();
            let mut idle = self.pool.idle_list();
            if idle.len() < self.pool.size {
                idle.push(ldap);
            }
        }
    }
}

impl ServicePool {
    /// An empty pool of at most `size` connections (connections are opened on demand, so
    /// the directory need not be reachable yet).
    pub(crate) fn new(
        connector: Arc<Connector>,
        bind_dn: String,
        bind_password: SecretString,
        size: usize,
    ) -> Self {
        Self {
            connector,
            bind_dn,
            bind_password,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            size: size.max(1),
        }
    }

    /// A bound connection: an idle one when there is one still open (unless `fresh`),
    /// otherwise a new one (connected and bound as the service account). Waits at most the
    /// operation timeout for a free slot. The error is a detail for the server log.
    pub(crate) async fn take(&self, fresh: bool) -> Result<Pooled<'_>, String> {
        let wait = self.connector.operation_timeout();
        let permit = tokio::time::timeout(wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| format!("no free LDAP connection within {wait:?} (pool_size)"))?
            .map_err(|_| "the LDAP connection pool is closed".to_owned())?;
        let idle = if fresh { None } else { self.pop_open() };
        let (ldap, reused) = match idle {
            Some(ldap) => (ldap, true),
            None => (self.open().await?, false),
        };
        Ok(Pooled {
            ldap,
            reused,
            pool: self,
            _permit: permit,
        })
    }

    /// An idle connection whose socket is still open; closed ones are dropped.
    fn pop_open(&self) -> Option<Ldap> {
        let mut idle = self.idle_list();
        while let Some(mut ldap) = idle.pop() {
            if !ldap.is_closed() {
                return Some(ldap);
            }
        }
        None
    }

    /// Connects and binds as the service account. A refused service bind is the
    /// directory being unusable, never a user's wrong password.
    async fn open(&self) -> Result<Ldap, String> {
        let mut ldap = self
            .connector
            .connect()
            .await
            .map_err(|e| format!("cannot connect to the directory: {e}"))?;
        let result = self
            .connector
            .simple_bind(&mut ldap, &self.bind_dn, &self.bind_password)
            .await
            .map_err(|e| format!("the service account's bind failed: {e}"))?;
        if result.rc != 0 {
            return Err(format!(
                "the directory refused the service account's bind as {:?} ({result}); \
                 check [auth.ldap] bind_dn and bind_password_file",
                self.bind_dn
            ));
        }
        tracing::debug!(bind_dn = %self.bind_dn, "opened an LDAP service connection");
        Ok(ldap)
    }

    /// The idle list, even if a panicking thread poisoned its lock (a list of connections
    /// cannot be left half-updated).
    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Ldap>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
