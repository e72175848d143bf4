//! The read cache of the storage port: the user row behind a login and the caller's
//! membership of a space, the two reads every authenticated request makes, served from
//! memory and dropped exactly when they change.
//!
//! - [`CachedStore`] wraps any [`crate::ports::Store`]; its own writes drop what they change
//!   at once.
//! - Writes of other processes (other nodes, the operator CLI) arrive through the
//!   invalidation port: an [`InvalidationSource`] of the backend reports each
//!   [`Invalidation`] to an [`InvalidationSink`] (the cache), and says when it is connected.
//!   While it is not, the cache answers nothing from memory.
//! - Staleness is bounded twice: by the source's delivery of a change while it is connected,
//!   and, should a change never be reported, by [`StoreCacheSettings::max_age`].

mod cached_store;
mod entries;
mod invalidation;

pub use cached_store::{CachedStore, StoreCacheSettings};
pub use invalidation::{Invalidation, InvalidationSink, InvalidationSource};

#[cfg(test)]
mod memory_store;
#[cfg(test)]
mod tests;
