//! The cross-node message feed's source on PostgreSQL: one dedicated connection, as the app
//! role, `LISTEN`ing on the channel that the schema-10 trigger notifies for every new
//! message, whichever node inserted it.

use super::PgStore;
use super::listen::{Handler, listen_forever};
use super::target::PgTarget;
use async_trait::async_trait;
use natterjack_core::domain::{MessageId, SpaceId};
use natterjack_core::feed::{PostedSink, PostedSource};
use std::sync::Arc;
use std::time::Duration;

/// The channel the trigger of `migrations/postgres/0010_message_feed.sql` notifies.
pub const POSTED_CHANNEL: &str = "natterjack_posted";

/// How long to wait before connecting again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Listens for new messages on a connection of its own (one more connection per server
/// than `database.max_connections`, besides the read cache's).
pub struct PgPosted {
    target: PgTarget,
}

/// The `<space id>:<message id>` the trigger writes, or `None` for anything else.
fn parse(payload: &str) -> Option<(SpaceId, MessageId)> {
    let (space, message) = payload.split_once(':')?;
    Some((SpaceId::parse(space).ok()?, MessageId::parse(message).ok()?))
}

/// The service, as the listener's handler.
struct ToWatchers(Arc<dyn PostedSink>);

#[async_trait]
impl Handler for ToWatchers {
    fn connected(&self) {}

    fn disconnected(&self) {}

    async fn notified(&self, payload: &str) {
        match parse(payload) {
            Some((space, message)) => self.0.posted(space, message).await,
            None => tracing::warn!("ignored a malformed message announcement"),
        }
    }
}

#[async_trait]
impl PostedSource for PgPosted {
    async fn run(&self, sink: Arc<dyn PostedSink>) {
        listen_forever(
            self.target.clone(),
            POSTED_CHANNEL,
            RETRY,
            "message feed (watchers miss other nodes' messages while it is disconnected)",
            &ToWatchers(sink),
        )
        .await;
    }
}

impl PgStore {
    /// The message feed of this store's database, connecting as this store's role.
    pub fn posted(&self) -> PgPosted {
        PgPosted {
            target: self.target().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_names_a_space_and_a_message_or_is_ignored() {
        let (space, message) = parse("12:345").unwrap();
        assert_eq!((space.get(), message.get()), (12, 345));
        for bad in ["", "12", "12:", ":3", "a:b", "1:2:3", "0:1", "-1:2"] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
