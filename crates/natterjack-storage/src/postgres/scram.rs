//! SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677), computed on the client so that
//! `db init` never sends a plaintext password in DDL: the statement, the server log and
//! `pg_stat_statements` only ever see the verifier, which PostgreSQL stores as is.

use super::errors::refuse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use natterjack_core::ports::StoreError;
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// PostgreSQL's default iteration count (`scram_iterations`).
const ITERATIONS: u32 = 4096;
/// PostgreSQL's salt length.
const SALT_LEN: usize = 16;

/// Checks that a password reads the same to every client: printable ASCII only, because
/// PostgreSQL and libpq apply SASLprep to passwords but sqlx does not, so a non-ASCII
/// password could verify from one client and not from another.
pub(crate) fn check_password(password: &str) -> Result<(), StoreError> {
    if password.is_empty() {
        return Err(refuse("a PostgreSQL role password cannot be empty"));
    }
    if !password.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(refuse(
            "a PostgreSQL role password must be printable ASCII (generate one, e.g. with `openssl rand -hex 24`)",
        ));
    }
    Ok(())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32], StoreError> {
    let mut mac =
        HmacSha256::new_from_slice(key).map_err(|_| refuse("HMAC-SHA-256 refused its key"))?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// PBKDF2-HMAC-SHA-256 with one output block: RFC 5802's `Hi(password, salt, i)`.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Result<[u8; 32], StoreError> {
    let mut u = hmac(password, &[salt, &1u32.to_be_bytes()])?;
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &[&u])?;
        out.iter_mut().zip(u.iter()).for_each(|(o, x)| *o ^= x);
    }
    Ok(out)
}

/// `(StoredKey, ServerKey)` for a password and salt.
fn keys(password: &str, salt: &[u8], iterations: u32) -> Result<([u8; 32], [u8; 32]), StoreError> {
    let salted = salted_password(password.as_bytes(), salt, iterations)?;
    let client_key = hmac(&salted, &[b"Client Key"])?;
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let server_key = hmac(&salted, &[b"Server Key"])?;
    Ok((stored_key, server_key))
}

/// The verifier for `password` with a given salt, in PostgreSQL's `rolpassword` form:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> Result<String, StoreError> {
    check_password(password)?;
    let (stored_key, server_key) = keys(password, salt, iterations)?;
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    ))
}

/// A fresh verifier for `password` with a random salt.
pub(crate) fn verifier(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    verifier_with_salt(password, &salt, ITERATIONS)
}

/// Whether a stored `rolpassword` already verifies `password` (recomputed with its own salt
/// and iteration count), so that running `db init` again changes nothing. Anything that is
/// not a well-formed SCRAM-SHA-256 verifier (an MD5 hash, NULL) does not match.
pub(crate) fn matches(stored: &str, password: &str) -> bool {
    let parsed = (|| {
        let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let iterations: u32 = iterations.parse().ok()?;
        let salt = B64.decode(salt).ok()?;
        let _ = keys.split_once(':')?;
        Some((iterations, salt))
    })();
    match parsed {
        Some((iterations, salt)) if (1..=10_000_000).contains(&iterations) => {
            verifier_with_salt(password, &salt, iterations).is_ok_and(|v| v == stored)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Made by PostgreSQL 15: `SET password_encryption = 'scram-sha-256';
    /// CREATE ROLE x PASSWORD 'pencil-Sharpener 42'; SELECT rolpassword FROM pg_authid ...`.
    const FROM_POSTGRES: &str = "SCRAM-SHA-256$4096:tYrc8+6vDkJTwXZGFVHiPw==$kaeL2Ry1NG0RRKyeF43VWXcT7K5NXC1zV6xhBIaDruY=:BV3xxm24ZBrH6zXeTiSymHxYWXoGcwCC6Yt+1ZqGvDo=";

    #[test]
    fn the_verifier_equals_the_one_postgresql_computed_for_the_same_salt() {
        let salt = B64.decode("tYrc8+6vDkJTwXZGFVHiPw==").unwrap();
        let ours = verifier_with_salt("pencil-Sharpener 42", &salt, 4096).unwrap();
        assert_eq!(ours, FROM_POSTGRES);
    }

    #[test]
    fn a_stored_verifier_matches_its_password_and_no_other() {
        assert!(matches(FROM_POSTGRES, "pencil-Sharpener 42"));
        assert!(!matches(FROM_POSTGRES, "pencil-sharpener 42"));
        assert!(!matches("md5abcdef", "pencil-Sharpener 42"));
        assert!(!matches("SCRAM-SHA-256$x:y$z", "pencil-Sharpener 42"));
    }

    #[test]
    fn fresh_verifiers_use_a_random_salt_and_verify_their_password() {
        let a = verifier("correct horse").unwrap();
        let b = verifier("correct horse").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$4096:"));
        assert!(matches(&a, "correct horse"));
        assert!(matches(&b, "correct horse"));
        assert!(!a.contains("correct horse"));
    }

    #[test]
    fn empty_and_non_ascii_passwords_are_refused() {
        assert!(verifier("").is_err());
        assert!(verifier("pässwort-lang").is_err());
        assert!(verifier("tab\there").is_err());
    }
}
