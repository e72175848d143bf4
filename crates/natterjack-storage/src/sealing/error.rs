//! Why a value could not be sealed or opened. No variant carries plaintext or key bytes,
//! so every one can be logged and audited.

/// A sealing failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The database holds no current data key (a database not yet migrated with a key).
    #[error("no current data key: run `natterjack migrate` with the key-encryption key configured")]
    NoCurrentKey,
    /// A value names a data key the database does not hold.
    #[error("data key {0} does not exist")]
    UnknownKey(u32),
    /// A value names a data key that was destroyed.
    #[error("data key {0} was destroyed")]
    Destroyed(u32),
    /// A data key was wrapped by another key-encryption key than the configured one.
    #[error(
        "data key {key} is wrapped by key-encryption key {wrapped_by}, but the configured key-encryption key is {configured}"
    )]
    WrongKek {
        /// The data key.
        key: u32,
        /// The fingerprint recorded with the data key.
        wrapped_by: String,
        /// The fingerprint of the configured key.
        configured: String,
    },
    /// A wrapped data key does not open under a key-encryption key with the right
    /// fingerprint: the stored bytes were altered.
    #[error("data key {0} does not unwrap: its stored bytes were altered")]
    Unwrap(u32),
    /// The stored bytes are not a sealed value of a known version.
    #[error("not a sealed value (unknown version or too short)")]
    Malformed,
    /// The key id stored beside the value differs from the one inside it.
    #[error("the value is sealed under data key {sealed} but its row says data key {column}")]
    KeyMismatch {
        /// The key id of the row's key column.
        column: u32,
        /// The key id inside the sealed value.
        sealed: u32,
    },
    /// Authentication failed: the value was altered, truncated, or moved from another row,
    /// column or space.
    #[error(
        "does not open under data key {0}: altered, truncated, or moved from another row or space"
    )]
    DoesNotOpen(u32),
    /// The value opened but is not UTF-8 text.
    #[error("opened value is not UTF-8")]
    NotText,
    /// The system's random number generator failed.
    #[error("no randomness available")]
    Random,
}
