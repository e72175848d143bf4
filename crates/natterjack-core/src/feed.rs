//! Messages posted on other nodes sharing the database, for this node's `WatchMessages`
//! streams. Each node's service hands its watchers what it posts itself; a backend that can
//! announce every new message (PostgreSQL, through a trigger and `LISTEN`) reports the ids
//! of all of them, and the service reads each one it did not post and hands it on as if it
//! had (`Service` implements [`PostedSink`]).
//!
//! The feed stays what it is on one node: live and bounded, not a log. A message
//! announced while the announcing connection is down is not delivered to this node's
//! watchers, as a watcher that lags behind is cut off rather than replayed.

use crate::domain::{MessageId, SpaceId};
use async_trait::async_trait;
use std::sync::Arc;

/// Where a source reports new messages.
#[async_trait]
pub trait PostedSink: Send + Sync {
    /// A message was committed in `space` (by any node, this one included).
    async fn posted(&self, space: SpaceId, message: MessageId);
}

/// A backend's watcher of new messages, whichever node posts them: it runs for the life of
/// the server, reconnecting by itself, and reports to the sink.
#[async_trait]
pub trait PostedSource: Send + Sync + 'static {
    /// Watches until the task running it is aborted.
    async fn run(&self, sink: Arc<dyn PostedSink>);
}
