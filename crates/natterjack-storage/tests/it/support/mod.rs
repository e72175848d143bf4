//! Helpers shared by the storage integration tests.

pub mod pg;
pub mod tls_postgres;

use natterjack_storage::sealing::{KeyEncryptionKey, Keyring};
use std::sync::Arc;
use zeroize::Zeroizing;

/// A keyring under a fixed test key-encryption key: every call wraps and unwraps the same
/// data keys, so a test can migrate with one and open with another as two processes would.
pub fn keyring() -> Arc<Keyring> {
    let kek = KeyEncryptionKey::from_bytes(Zeroizing::new([7u8; 32])).expect("test key");
    Arc::new(Keyring::new(kek))
}
