//! One `LISTEN`ing connection for the life of the server, reconnecting by itself: what the
//! read cache's invalidations and the cross-node message feed both need from PostgreSQL.
//!
//! Notifications sent while the connection is down are gone for good, so the listener
//! tells its handler when it starts to hear everything (after `LISTEN` succeeded) and the
//! moment it may miss something (the connection was lost).

use super::target::PgTarget;
use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::time::Duration;

/// What a listener reports to.
#[async_trait]
pub(crate) trait Handler: Send + Sync {
    /// Every notification committed from now on will be heard.
    fn connected(&self);
    /// The connection was lost or could not be made: notifications may be missed.
    fn disconnected(&self);
    /// A notification's payload.
    async fn notified(&self, payload: &str);
}

/// Listens on `channel` through `target` (the app role's: `LISTEN` needs no grant) until
/// the task running it is aborted, trying again `retry` after each failure. `what` names
/// the listener in the log. The target is held for as long as this runs, so a TLS
/// forwarder it leads to outlives the listener's connections.
pub(crate) async fn listen_forever(
    target: PgTarget,
    channel: &str,
    retry: Duration,
    what: &str,
    handler: &dyn Handler,
) {
    // A pool of one, so that a lost connection is replaced by a fresh one.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(true)
        .connect_lazy_with(target.options().clone());
    let mut failing = false;
    loop {
        match subscribe(&pool, channel).await {
            Ok(mut listener) => {
                handler.connected();
                if failing {
                    tracing::info!(listener = what, "listener connected again");
                }
                failing = false;
                let why = relay(&mut listener, handler).await;
                handler.disconnected();
                tracing::warn!(listener = what, reason = %why, "listener disconnected");
            }
            Err(e) => {
                handler.disconnected();
                if !failing {
                    tracing::warn!(listener = what, error = %e, "listener cannot connect");
                }
                failing = true;
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// Connects and subscribes; the listener reconnects only when [`listen_forever`] says so.
async fn subscribe(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Reports every notification until the connection is lost or fails.
async fn relay(listener: &mut PgListener, handler: &dyn Handler) -> String {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => handler.notified(notification.payload()).await,
            Ok(None) => return "connection lost".to_owned(),
            Err(e) => return e.to_string(),
        }
    }
}
