//! The one AEAD both layers use (values under data keys, data keys under the
//! key-encryption key): AES-256-GCM-SIV with random nonces, from aws-lc-rs.

use super::envelope::NONCE_LEN;
use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, Nonce, RandomizedNonceKey};

/// A 256-bit key ready to seal and open.
pub(super) struct Cipher(RandomizedNonceKey);

/// The AEAD refused: a failed seal (no randomness) or a value that does not open.
pub(super) struct Refused;

impl Cipher {
    /// A cipher for 32 key bytes.
    pub(super) fn new(key: &[u8; 32]) -> Result<Self, Refused> {
        RandomizedNonceKey::new(&AES_256_GCM_SIV, key)
            .map(Self)
            .map_err(|_| Refused)
    }

    /// Seals `plaintext` bound to `aad`; returns the random nonce and ciphertext ‖ tag.
    pub(super) fn seal(
        &self,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), Refused> {
        let mut in_out = Vec::with_capacity(plaintext.len() + AES_256_GCM_SIV.tag_len());
        in_out.extend_from_slice(plaintext);
        let nonce = self
            .0
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| Refused)?;
        Ok((*nonce.as_ref(), in_out))
    }

    /// Opens ciphertext ‖ tag sealed under `nonce` and `aad`.
    pub(super) fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, Refused> {
        let mut in_out = sealed.to_vec();
        let len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| Refused)?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}
