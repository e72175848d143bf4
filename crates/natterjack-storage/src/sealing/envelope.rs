//! The stored layout of a sealed value: `version (1) ‖ key id (4, big-endian) ‖ nonce (12)
//! ‖ ciphertext ‖ tag (16)`. The version byte lets a later format coexist with this one.

use super::error::SealError;

/// The only layout so far.
pub(super) const VERSION: u8 = 1;
/// Nonce length of AES-256-GCM-SIV.
pub(super) const NONCE_LEN: usize = 12;
/// Tag length of AES-256-GCM-SIV.
pub(super) const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// A sealed value split into its parts.
pub(super) struct Envelope<'a> {
    pub key: u32,
    pub nonce: [u8; NONCE_LEN],
    pub sealed: &'a [u8],
}

/// Lays out a sealed value.
pub(super) fn write(key: u32, nonce: &[u8; NONCE_LEN], ciphertext_and_tag: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext_and_tag.len());
    out.push(VERSION);
    out.extend_from_slice(&key.to_be_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(ciphertext_and_tag);
    out
}

/// Splits a stored value; `Malformed` when it cannot be one of ours.
pub(super) fn read(bytes: &[u8]) -> Result<Envelope<'_>, SealError> {
    if bytes.len() < HEADER_LEN + TAG_LEN || bytes[0] != VERSION {
        return Err(SealError::Malformed);
    }
    let key = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[5..HEADER_LEN]);
    Ok(Envelope {
        key,
        nonce,
        sealed: &bytes[HEADER_LEN..],
    })
}
