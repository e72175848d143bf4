//! The read cache's invalidation source on PostgreSQL: one dedicated connection, as the app
//! role, `LISTEN`ing on the channel that the schema-8 triggers notify, so that a change any
//! process commits (another node, the operator CLI) reaches this node's cache.
//!
//! The cache is told it may serve only once `LISTEN` has succeeded, and told to stop the
//! moment the connection is lost (notifications sent meanwhile are gone for good); it drops
//! everything on each (re)connection. A connection that dies without the socket noticing is
//! covered by the cache's maximum age, not here.

use super::PgStore;
use super::listen::{Handler, listen_forever};
use super::target::PgTarget;
use async_trait::async_trait;
use natterjack_core::store_cache::{Invalidation, InvalidationSink, InvalidationSource};
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
    target: PgTarget,
}

impl PgInvalidations {
    /// A listener connecting through `target` (the app role's: `LISTEN` needs no grant).
    pub fn new(target: PgTarget) -> Self {
        Self { target }
    }
}

/// The read cache, as the listener's handler.
struct ToCache(Arc<dyn InvalidationSink>);

#[async_trait]
impl Handler for ToCache {
    fn connected(&self) {
        self.0.connected();
    }

    fn disconnected(&self) {
        self.0.disconnected();
    }

    async fn notified(&self, payload: &str) {
        self.0.invalidate(Invalidation::from_payload(payload));
    }
}

#[async_trait]
impl InvalidationSource for PgInvalidations {
    async fn run(&self, sink: Arc<dyn InvalidationSink>) {
        listen_forever(
            self.target.clone(),
            INVALIDATION_CHANNEL,
            RETRY,
            "cache invalidation (reads bypass the cache while it is disconnected)",
            &ToCache(sink),
        )
        .await;
    }
}

impl PgStore {
    /// The invalidation source of this store's database, connecting as this store's role.
    pub fn invalidations(&self) -> PgInvalidations {
        PgInvalidations::new(self.target().clone())
    }
}
