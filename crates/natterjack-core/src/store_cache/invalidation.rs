//! The invalidation port: how a backend tells the read cache that something changed
//! elsewhere. The cache never guesses what another process wrote; a source that watches the
//! database (PostgreSQL `LISTEN`, a polled generation row on SQLite) reports each change,
//! and says whether it is watching at all, so that the cache serves only while it is.

use crate::domain::{SpaceId, UserId};
use async_trait::async_trait;
use std::sync::Arc;

/// What changed, as narrowly as the source can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// A user row (password hash, admin flag) or an identity linked to it.
    User(UserId),
    /// What one user holds on one space.
    Membership(SpaceId, UserId),
    /// Anything: the source cannot say what, so the whole cache goes.
    Everything,
}

impl Invalidation {
    /// Reads the text the database triggers send (`u:<user>`, `m:<space>:<user>`, `*`).
    /// Anything else is read as [`Invalidation::Everything`]: a message the cache does not
    /// understand must make it forget too much, never too little.
    pub fn from_payload(payload: &str) -> Self {
        let id = |text: &str| text.parse::<i64>().ok();
        let parsed = match payload.split(':').collect::<Vec<_>>().as_slice() {
            ["u", user] => id(user)
                .and_then(|u| UserId::from_i64(u).ok())
                .map(Self::User),
            ["m", space, user] => match (id(space), id(user)) {
                (Some(s), Some(u)) => match (SpaceId::from_i64(s), UserId::from_i64(u)) {
                    (Ok(s), Ok(u)) => Some(Self::Membership(s, u)),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        parsed.unwrap_or(Self::Everything)
    }

    /// The text [`Invalidation::from_payload`] reads back: the format the triggers write,
    /// for sources that build their messages in code.
    pub fn to_payload(self) -> String {
        match self {
            Self::User(user) => format!("u:{user}"),
            Self::Membership(space, user) => format!("m:{space}:{user}"),
            Self::Everything => "*".to_owned(),
        }
    }
}

/// Where a source reports: implemented by the read cache
/// ([`CachedStore`](super::CachedStore)). Calls are cheap and never block on I/O.
pub trait InvalidationSink: Send + Sync {
    /// The source watches the database from now on: every change committed after this call
    /// will be reported. The cache drops everything it holds (changes made before may never
    /// have been reported) and starts serving.
    fn connected(&self);
    /// The source stopped watching (a lost connection): the cache drops everything and
    /// sends every read to the database until [`InvalidationSink::connected`] again.
    fn disconnected(&self);
    /// Something changed in the database.
    fn invalidate(&self, what: Invalidation);
}

/// A backend's watcher of changes made by any process: it runs for the life of the server,
/// reconnecting by itself, and reports to the sink. A backend without one leaves the cache
/// disconnected, which means every read goes to the database.
#[async_trait]
pub trait InvalidationSource: Send + Sync + 'static {
    /// Watches until the task running it is aborted. Calls [`InvalidationSink::connected`]
    /// only once it is sure to see every later change, and
    /// [`InvalidationSink::disconnected`] as soon as it may miss one.
    async fn run(&self, sink: Arc<dyn InvalidationSink>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_payloads_name_a_user_or_a_membership() {
        let user = UserId::from_i64(7).unwrap();
        let space = SpaceId::from_i64(3).unwrap();
        assert_eq!(Invalidation::from_payload("u:7"), Invalidation::User(user));
        assert_eq!(
            Invalidation::from_payload("m:3:7"),
            Invalidation::Membership(space, user)
        );
        for what in [
            Invalidation::User(user),
            Invalidation::Membership(space, user),
            Invalidation::Everything,
        ] {
            assert_eq!(Invalidation::from_payload(&what.to_payload()), what);
        }
    }

    #[test]
    fn a_payload_the_cache_does_not_understand_drops_everything() {
        for odd in [
            "", "*", "u:", "u:0", "u:-1", "u:x", "m:1", "m:1:2:3", "x:1", "u:1:2",
        ] {
            assert_eq!(
                Invalidation::from_payload(odd),
                Invalidation::Everything,
                "{odd:?}"
            );
        }
    }
}
