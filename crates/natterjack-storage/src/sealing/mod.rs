//! Encryption at rest: user content (message text, space names) is sealed before it
//! reaches either database, so a stolen file, backup or dump shows ciphertext only.
//!
//! Envelope encryption. A *key-encryption key* (KEK, [`KeyEncryptionKey`]) lives outside
//! the database (a 0600 file, the environment, or an operator's command); it wraps
//! *data keys*, which are stored in the `data_keys` table with the data and named by a
//! numeric id. Exactly one data key is current: new writes are sealed under it, and
//! rotation re-seals older rows under it in the background.
//!
//! Each value is sealed with AES-256-GCM-SIV (aws-lc-rs, the TLS stack's own crypto, with a
//! random 96-bit nonce; SIV keeps a repeated nonce from revealing more than the equality of
//! two identical values). The associated data binds the value to its place — table,
//! column, row id, space id and key id ([`Place`]) — so a ciphertext copied to another row,
//! another space or another key id does not open. The stored layout is
//! [`envelope`]'s: version, key id, nonce, ciphertext and tag.
//!
//! Usernames are not sealed: they are identifiers looked up case-insensitively on every
//! login and already appear in the audit trail by design.

mod cipher;
mod envelope;
mod error;
mod kek;
mod keyring;
mod place;

pub use error::SealError;
pub use kek::KeyEncryptionKey;
pub use keyring::{DataKeyRow, Keyring, Sealed};
pub use place::Place;
