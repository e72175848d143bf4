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
use std::collections::{HashSet, VecDeque};
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

/// The ids of the latest messages handed to a node's watchers, at most `capacity`, the
/// oldest forgotten first: a message that arrives both ways (its post, and the database's
/// announcement of it) is handed on once. Looked up on every post, so by hash, not by scan.
#[derive(Debug)]
pub(crate) struct HandedOn {
    ids: HashSet<MessageId>,
    order: VecDeque<MessageId>,
    capacity: usize,
}

impl HandedOn {
    /// Remembers at most `capacity` ids (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ids: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Whether `id` was handed on (and is still remembered).
    pub(crate) fn contains(&self, id: MessageId) -> bool {
        self.ids.contains(&id)
    }

    /// Remembers `id`; false when it was remembered already (nothing changes then).
    pub(crate) fn insert(&mut self, id: MessageId) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: i64) -> MessageId {
        MessageId::from_i64(n).unwrap()
    }

    #[test]
    fn an_id_is_handed_on_once_and_the_oldest_is_forgotten_beyond_the_capacity() {
        let mut handed = HandedOn::new(2);
        assert!(handed.insert(id(1)));
        assert!(!handed.insert(id(1)), "the second arrival is skipped");
        assert!(handed.insert(id(2)));
        assert!(handed.insert(id(3)));
        assert!(!handed.contains(id(1)), "forgotten: the oldest of three");
        assert!(handed.contains(id(2)) && handed.contains(id(3)));
    }
}
