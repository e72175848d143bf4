//! The key-encryption key: it never touches the database, it only wraps the data keys
//! that do.

use super::cipher::Cipher;
use super::envelope::{self, NONCE_LEN};
use super::error::SealError;
use zeroize::Zeroizing;

/// The key-encryption key. Its bytes are zeroised on drop and never printed; its
/// fingerprint ([`Self::id`]) names it in errors and is stored beside each data key it
/// wraps, so a wrong key is reported as such rather than as damaged data.
pub struct KeyEncryptionKey {
    cipher: Cipher,
    bytes: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyEncryptionKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Result<Self, SealError> {
        let cipher = Cipher::new(&bytes).map_err(|_| SealError::Random)?;
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &bytes[..]),
            b"natterjack key-encryption key id v1",
        );
        let id = hex(&tag.as_ref()[..8]);
        Ok(Self { cipher, bytes, id })
    }

    /// A key from 64 hex digits (surrounding whitespace ignored); the error never repeats
    /// the text.
    pub fn parse_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 32]);
        let valid = text.len() == 64
            && bytes.iter_mut().enumerate().all(|(i, byte)| {
                text.get(2 * i..2 * i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .map(|value| *byte = value)
                    .is_some()
            });
        if !valid {
            return Err("a key-encryption key is 64 hex digits (32 random bytes)".to_owned());
        }
        Self::from_bytes(bytes).map_err(|e| e.to_string())
    }

    /// A new random key (the development run's, or a replacement).
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut bytes[..]).map_err(|_| SealError::Random)?;
        Self::from_bytes(bytes)
    }

    /// The key as 64 hex digits, to write it to a 0600 file once.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex(&self.bytes[..]))
    }

    /// The fingerprint: 16 hex digits of an HMAC under the key, safe to show and store.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn associated_data(key: u32) -> Vec<u8> {
        let mut aad = b"natterjack data key v1\0".to_vec();
        aad.extend_from_slice(&key.to_be_bytes());
        aad
    }

    /// Wraps data key `key`'s bytes, bound to its id.
    pub(super) fn wrap(&self, key: u32, data_key: &[u8; 32]) -> Result<Vec<u8>, SealError> {
        let (nonce, sealed) = self
            .cipher
            .seal(&Self::associated_data(key), data_key)
            .map_err(|_| SealError::Random)?;
        Ok(envelope::write(key, &nonce, &sealed))
    }

    /// Unwraps data key `key`, checking the fingerprint it was stored with first.
    pub(super) fn unwrap(
        &self,
        key: u32,
        kek_id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, SealError> {
        if kek_id != self.id {
            return Err(SealError::WrongKek {
                key,
                wrapped_by: kek_id.to_owned(),
                configured: self.id.clone(),
            });
        }
        let parts = envelope::read(wrapped).map_err(|_| SealError::Unwrap(key))?;
        if parts.key != key {
            return Err(SealError::Unwrap(key));
        }
        let nonce: [u8; NONCE_LEN] = parts.nonce;
        let opened = Zeroizing::new(
            self.cipher
                .open(nonce, &Self::associated_data(key), parts.sealed)
                .map_err(|_| SealError::Unwrap(key))?,
        );
        let mut bytes = Zeroizing::new([0u8; 32]);
        if opened.len() != 32 {
            return Err(SealError::Unwrap(key));
        }
        bytes.copy_from_slice(&opened);
        Ok(bytes)
    }
}
