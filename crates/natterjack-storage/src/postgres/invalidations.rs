//! The read cache's invalidation source on PostgreSQL: one dedicated connection, as the app
//! role, `LISTEN`ing on the channel that the schema-8 triggers notify, so that a change any
//! process commits (another node, the operator CLI) reaches this node's cache.
//!
//! The cache is told it may serve only once `LISTEN` has succeeded, and told to stop the
//! moment the connection is lost (notifications sent meanwhile are gone for good); it drops
//! everything on each (re)connection. A connection that dies without the socket noticing is
//! covered by the cache's maximum age, not here.

use super::PgStore;
use async_trait::async_trait;
use natterjack_core::store_cache::{Invalidation, InvalidationSink, InvalidationSource};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use std::sync::Arc;
use std::time::Duration;

/// The channel the triggers of `migrations/postgres/0008_cache_invalidation.sql` notify.
pub const INVALIDATION_CHANNEL: &str = "natterjack_invalidate";

/// How long to wait before connecting again after a failure: short, since the cache is
/// bypassed (every read goes to the database) until it succeeds.
const RETRY: Duration = Duration::from_secs(1);

/// Listens for the triggers' notifications on a connection of its own (one more connection
/// per server than `database.max_connections`).
pub struct PgInvalidations {
    options: PgConnectOptions,
    retry: Duration,
}

impl PgInvalidations {
    /// A listener connecting with `options` (the app role's: `LISTEN` needs no grant).
    pub fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            retry: RETRY,
        }
    }

    /// Connects and subscribes; the listener reconnects only when this source says so.
    async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.eager_reconnect(false);
        listener.ignore_pool_close_event(true);
        listener.listen(INVALIDATION_CHANNEL).await?;
        Ok(listener)
    }

    /// Reports every notification until the connection is lost or fails.
    async fn relay(listener: &mut PgListener, sink: &dyn InvalidationSink) -> String {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    sink.invalidate(Invalidation::from_payload(notification.payload()));
                }
                Ok(None) => return "connection lost".to_owned(),
                Err(e) => return e.to_string(),
            }
        }
    }
}

#[async_trait]
impl InvalidationSource for PgInvalidations {
    async fn run(&self, sink: Arc<dyn InvalidationSink>) {
        // A pool of one, so that a lost connection is replaced by a fresh one.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(true)
            .connect_lazy_with(self.options.clone());
        let mut failing = false;
        loop {
            match Self::listen(&pool).await {
                Ok(mut listener) => {
                    sink.connected();
                    if failing {
                        tracing::info!("cache invalidation listener connected again");
                    }
                    failing = false;
                    let why = Self::relay(&mut listener, sink.as_ref()).await;
                    sink.disconnected();
                    tracing::warn!(reason = %why, "cache invalidation listener disconnected: reads bypass the cache until it reconnects");
                }
                Err(e) => {
                    sink.disconnected();
                    if !failing {
                        tracing::warn!(error = %e, "cache invalidation listener cannot connect: reads bypass the cache until it does");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(self.retry).await;
        }
    }
}

impl PgStore {
    /// The invalidation source of this store's database, connecting as this store's role.
    pub fn invalidations(&self) -> PgInvalidations {
        PgInvalidations::new(self.pool().connect_options().as_ref().clone())
    }
}
