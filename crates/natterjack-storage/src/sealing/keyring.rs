//! The data keys a process holds unwrapped, and which of them is current.

use super::cipher::Cipher;
use super::envelope;
use super::error::SealError;
use super::kek::KeyEncryptionKey;
use super::place::Place;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use zeroize::Zeroizing;

/// One row of the `data_keys` table, as both backends read it.
#[derive(Clone)]
pub struct DataKeyRow {
    /// The key id (1 and up; 0 marks a value not sealed yet).
    pub id: u32,
    /// The key wrapped by the key-encryption key; `None` once destroyed.
    pub wrapped: Option<Vec<u8>>,
    /// The fingerprint of the key-encryption key that wrapped it.
    pub kek_id: String,
    /// Whether new writes are sealed under it.
    pub current: bool,
}

impl std::fmt::Debug for DataKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyRow")
            .field("id", &self.id)
            .field("destroyed", &self.wrapped.is_none())
            .field("kek_id", &self.kek_id)
            .field("current", &self.current)
            .finish()
    }
}

/// The key-encryption key and the data keys unwrapped with it. Shared by every
/// connection of a store; reloaded from `data_keys` when a value names a key it does not
/// hold yet (another process rotated), and polled for the current key by the resealer.
pub struct Keyring {
    kek: KeyEncryptionKey,
    keys: RwLock<HashMap<u32, Arc<Cipher>>>,
    destroyed: RwLock<Vec<u32>>,
    current: AtomicU32,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("kek", &self.kek)
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

/// A value sealed for its place, with the key id to store beside it.
pub struct Sealed {
    /// The data key it is sealed under.
    pub key: u32,
    /// The stored bytes.
    pub bytes: Vec<u8>,
}

impl Keyring {
    /// A keyring holding no data key yet.
    pub fn new(kek: KeyEncryptionKey) -> Self {
        Self {
            kek,
            keys: RwLock::new(HashMap::new()),
            destroyed: RwLock::new(Vec::new()),
            current: AtomicU32::new(0),
        }
    }

    /// The key-encryption key.
    pub fn kek(&self) -> &KeyEncryptionKey {
        &self.kek
    }

    /// The current data key's id, if the database has one.
    pub fn current(&self) -> Option<u32> {
        match self.current.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// Takes in the `data_keys` rows: unwraps every key not held yet and notes the current
    /// one. Fails on the first key that does not unwrap, naming it, and then changes
    /// nothing.
    pub fn load(&self, rows: &[DataKeyRow]) -> Result<(), SealError> {
        let mut fresh = Vec::new();
        {
            let held = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            for row in rows {
                if let Some(wrapped) = &row.wrapped
                    && !held.contains_key(&row.id)
                {
                    let bytes = self.kek.unwrap(row.id, &row.kek_id, wrapped)?;
                    let cipher = Cipher::new(&bytes).map_err(|_| SealError::Unwrap(row.id))?;
                    fresh.push((row.id, Arc::new(cipher)));
                }
            }
        }
        let destroyed: Vec<u32> = rows
            .iter()
            .filter(|r| r.wrapped.is_none())
            .map(|r| r.id)
            .collect();
        let mut held = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        for id in &destroyed {
            held.remove(id);
        }
        held.extend(fresh);
        *self
            .destroyed
            .write()
            .unwrap_or_else(PoisonError::into_inner) = destroyed;
        let current = rows.iter().find(|r| r.current).map_or(0, |r| r.id);
        self.current.store(current, Ordering::Release);
        Ok(())
    }

    /// Whether a value under `key` can be opened without reloading the keys.
    pub fn holds(&self, key: u32) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&key)
    }

    /// A new data key's wrapped bytes for id `key`, wrapped by this key-encryption key.
    pub fn new_wrapped_key(&self, key: u32) -> Result<Vec<u8>, SealError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut bytes[..]).map_err(|_| SealError::Random)?;
        self.kek.wrap(key, &bytes)
    }

    /// Unwraps `row` with this keyring's key-encryption key and wraps it again with
    /// `next`: rotating the key-encryption key touches the data keys only.
    pub fn rewrap(&self, row: &DataKeyRow, next: &KeyEncryptionKey) -> Result<Vec<u8>, SealError> {
        let wrapped = row.wrapped.as_ref().ok_or(SealError::Destroyed(row.id))?;
        let bytes = self.kek.unwrap(row.id, &row.kek_id, wrapped)?;
        next.wrap(row.id, &bytes)
    }

    fn cipher(&self, key: u32) -> Result<Arc<Cipher>, SealError> {
        if let Some(cipher) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned()
        {
            return Ok(cipher);
        }
        if self
            .destroyed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            return Err(SealError::Destroyed(key));
        }
        Err(SealError::UnknownKey(key))
    }

    /// Seals `plaintext` for `place` under the current data key.
    pub fn seal(&self, place: &Place, plaintext: &str) -> Result<Sealed, SealError> {
        let key = self.current().ok_or(SealError::NoCurrentKey)?;
        self.seal_under(key, place, plaintext)
    }

    /// Seals under a given key (the current one, read once for a whole batch).
    pub fn seal_under(
        &self,
        key: u32,
        place: &Place,
        plaintext: &str,
    ) -> Result<Sealed, SealError> {
        let cipher = self.cipher(key)?;
        let (nonce, sealed) = cipher
            .seal(&place.associated_data(key), plaintext.as_bytes())
            .map_err(|_| SealError::Random)?;
        Ok(Sealed {
            key,
            bytes: envelope::write(key, &nonce, &sealed),
        })
    }

    /// Opens the value stored at `place` with `column_key` in its row's key column.
    pub fn open(&self, place: &Place, column_key: u32, bytes: &[u8]) -> Result<String, SealError> {
        let parts = envelope::read(bytes)?;
        if parts.key != column_key {
            return Err(SealError::KeyMismatch {
                column: column_key,
                sealed: parts.key,
            });
        }
        let cipher = self.cipher(parts.key)?;
        let opened = cipher
            .open(parts.nonce, &place.associated_data(parts.key), parts.sealed)
            .map_err(|_| SealError::DoesNotOpen(parts.key))?;
        String::from_utf8(opened).map_err(|_| SealError::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring_with(ids: &[u32], current: u32) -> (Keyring, Vec<DataKeyRow>) {
        let keyring = Keyring::new(KeyEncryptionKey::generate().unwrap());
        let rows: Vec<DataKeyRow> = ids
            .iter()
            .map(|&id| DataKeyRow {
                id,
                wrapped: Some(keyring.new_wrapped_key(id).unwrap()),
                kek_id: keyring.kek().id().to_owned(),
                current: id == current,
            })
            .collect();
        keyring.load(&rows).unwrap();
        (keyring, rows)
    }

    #[test]
    fn a_sealed_value_opens_only_at_its_own_place() {
        let (keyring, _) = keyring_with(&[1], 1);
        let here = Place::message_body(7, 3);
        let sealed = keyring.seal(&here, "héllo ✓").unwrap();
        assert_eq!(sealed.key, 1);
        assert_eq!(keyring.open(&here, 1, &sealed.bytes).unwrap(), "héllo ✓");
        for elsewhere in [
            Place::message_body(8, 3),
            Place::message_body(7, 4),
            Place::space_name(7),
            Place {
                column: "name",
                ..here
            },
        ] {
            assert_eq!(
                keyring.open(&elsewhere, 1, &sealed.bytes),
                Err(SealError::DoesNotOpen(1)),
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn altered_truncated_or_relabelled_values_are_refused_without_plaintext() {
        let (keyring, _) = keyring_with(&[1, 2], 2);
        let here = Place::space_name(5);
        let sealed = keyring.seal(&here, "secret plans").unwrap().bytes;
        for i in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[i] ^= 0x01;
            let result = keyring.open(&here, 2, &flipped);
            assert!(result.is_err(), "byte {i} flipped still opened");
        }
        assert_eq!(
            keyring.open(&here, 2, &sealed[..sealed.len() - 1]),
            Err(SealError::DoesNotOpen(2))
        );
        assert_eq!(
            keyring.open(&here, 2, &sealed[..10]),
            Err(SealError::Malformed)
        );
        // The key id rewritten in both the row and the value: the AAD still names key 2.
        let mut relabelled = sealed.clone();
        relabelled[1..5].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            keyring.open(&here, 1, &relabelled),
            Err(SealError::DoesNotOpen(1))
        );
        assert_eq!(
            keyring.open(&here, 1, &sealed),
            Err(SealError::KeyMismatch {
                column: 1,
                sealed: 2
            })
        );
    }

    #[test]
    fn a_value_under_an_unknown_or_destroyed_key_names_the_key() {
        let (keyring, mut rows) = keyring_with(&[1, 2], 2);
        let here = Place::message_body(1, 1);
        let old = keyring.seal_under(1, &here, "x").unwrap().bytes;
        rows[0].wrapped = None;
        keyring.load(&rows).unwrap();
        assert_eq!(keyring.open(&here, 1, &old), Err(SealError::Destroyed(1)));
        let mut unknown = keyring.seal(&here, "y").unwrap().bytes;
        unknown[1..5].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            keyring.open(&here, 9, &unknown),
            Err(SealError::UnknownKey(9))
        );
    }

    #[test]
    fn a_wrong_key_encryption_key_is_named_and_changes_nothing() {
        let (_, rows) = keyring_with(&[1], 1);
        let stranger = Keyring::new(KeyEncryptionKey::generate().unwrap());
        match stranger.load(&rows) {
            Err(SealError::WrongKek { key: 1, .. }) => {}
            other => panic!("expected WrongKek for key 1, got {other:?}"),
        }
        assert_eq!(stranger.current(), None);
        // A tampered wrapped key under the right fingerprint is reported as altered.
        let (keyring, mut rows) = keyring_with(&[1], 1);
        let fresh = Keyring::new(KeyEncryptionKey::parse_hex(&keyring.kek().to_hex()).unwrap());
        if let Some(w) = rows[0].wrapped.as_mut() {
            let last = w.len() - 1;
            w[last] ^= 1;
        }
        assert_eq!(fresh.load(&rows), Err(SealError::Unwrap(1)));
    }

    #[test]
    fn rewrapping_moves_data_keys_to_a_new_key_encryption_key() {
        let (keyring, rows) = keyring_with(&[1], 1);
        let here = Place::message_body(2, 2);
        let sealed = keyring.seal(&here, "kept").unwrap().bytes;
        let next = KeyEncryptionKey::generate().unwrap();
        let rewrapped = DataKeyRow {
            wrapped: Some(keyring.rewrap(&rows[0], &next).unwrap()),
            kek_id: next.id().to_owned(),
            ..rows[0].clone()
        };
        let later = Keyring::new(next);
        later.load(&[rewrapped]).unwrap();
        assert_eq!(later.open(&here, 1, &sealed).unwrap(), "kept");
    }

    #[test]
    fn the_key_encryption_key_parses_hex_and_never_prints_its_bytes() {
        assert!(KeyEncryptionKey::parse_hex("abc").is_err());
        assert!(KeyEncryptionKey::parse_hex(&"zz".repeat(32)).is_err());
        let kek = KeyEncryptionKey::parse_hex(&format!(" {} \n", "ab".repeat(32))).unwrap();
        assert_eq!(kek.id().len(), 16);
        let shown = format!("{kek:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert_eq!(
            KeyEncryptionKey::parse_hex(&"ab".repeat(32)).unwrap().id(),
            kek.id()
        );
    }
}
