//! The storage read cache of `serve`: the user row and the membership that every
//! authenticated request reads, answered from memory (`natterjack_core::store_cache`).
//! Schema 8's triggers announce every change, whichever process makes it: on PostgreSQL as
//! a notification on a connection this module keeps listening, on SQLite by moving a counter
//! this module polls every `database.cache_poll_ms`. The one-shot CLI commands never cache:
//! they build their service on the plain store. On PostgreSQL a second listener brings the
//! messages other nodes post to this node's watchers ([`feed`]).

use crate::config::Config;
use crate::storage::Storage;
use natterjack_core::clock::SharedClock;
use natterjack_core::ports::Store;
use natterjack_core::store_cache::{
    CachedStore, InvalidationSink, InvalidationSource, StoreCacheSettings,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The store `serve` builds its service on, and the task that keeps its cache exact.
pub struct ReadCache {
    /// The storage port: the cache in front of the store, or the store itself.
    pub store: Arc<dyn Store>,
    /// The invalidation listener; `None` when nothing is cached.
    pub listener: Option<Listening>,
}

/// A database listener's task (the read cache's invalidations, the message feed), stopped
/// when this is dropped, so that it ends with the server (or the failed start-up) that owns
/// it.
pub struct Listening(JoinHandle<()>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Puts the read cache in front of `storage` where the backend announces changes and
/// `database.cache_max_age_ms` is not 0, and starts listening for the announcements. The
/// cache answers nothing from memory until the listener is connected.
pub fn start(cfg: &Config, storage: &Storage, clock: SharedClock) -> ReadCache {
    let plain = || ReadCache {
        store: storage.store(),
        listener: None,
    };
    let max_age = Duration::from_millis(cfg.database.cache_max_age_ms);
    if max_age.is_zero() {
        return plain();
    }
    let source: Arc<dyn InvalidationSource> = match storage {
        Storage::Postgres(pg) => Arc::new(pg.invalidations()),
        Storage::Sqlite(sqlite) => {
            Arc::new(sqlite.invalidations(Duration::from_millis(cfg.database.cache_poll_ms)))
        }
    };
    let cache = Arc::new(CachedStore::new(
        storage.store(),
        StoreCacheSettings {
            max_age,
            capacity: cfg.database.cache_capacity,
        },
        clock,
    ));
    let sink: Arc<dyn InvalidationSink> = cache.clone();
    let listener = tokio::spawn(async move { source.run(sink).await });
    ReadCache {
        store: cache,
        listener: Some(Listening(listener)),
    }
}

/// Starts handing the messages other nodes post to `service`'s watchers, where the backend
/// announces new messages (PostgreSQL); `None` on SQLite, whose one process posts every
/// message its watchers see.
pub fn feed(
    storage: &Storage,
    service: Arc<natterjack_core::service::Service>,
) -> Option<Listening> {
    let Storage::Postgres(pg) = storage else {
        return None;
    };
    let source = pg.posted();
    let sink: Arc<dyn natterjack_core::feed::PostedSink> = service;
    Some(Listening(tokio::spawn(async move {
        natterjack_core::feed::PostedSource::run(&source, sink).await;
    })))
}
