//! One server certificate chain and its private key, read from their PEM files and checked
//! as a pair: the chain and the key parse, the key is the one the leaf certifies, the key
//! file is private (0600) and the leaf has not expired. Start-up and every reload read the
//! files here, so a pair that start-up would refuse is never swapped in later either.
//!
//! The files are read once into memory and everything is judged from those bytes, so a file
//! replaced between the check and the use cannot slip in unchecked; the fingerprint of the
//! same bytes tells the reloader whether anything changed since its last attempt.

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Where the server certificate and its key live: `tls.cert` and `tls.key`, or the
/// development CA's `server.pem` and `server-key.pem`. Kept together because they are only
/// ever read, checked and replaced as a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairFiles {
    /// The PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// The PEM private key (0600).
    pub key: PathBuf,
}

/// The files' contents as read at one moment (or why a file could not be read), so that the
/// check and the change detection judge the same bytes.
pub struct PairBytes {
    cert: Result<Vec<u8>, String>,
    key: Result<Zeroizing<Vec<u8>>, String>,
}

/// A checked pair, ready to hand to rustls, with what the log says about its certificate.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The chain and the signing key, as rustls uses them in a handshake.
    pub certified: Arc<CertifiedKey>,
    /// The leaf's subject, serial and expiry, for the log line that reports a reload.
    pub summary: Summary,
}

/// The leaf certificate in words: enough for an operator to tell which certificate is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The subject's distinguished name.
    pub subject: String,
    /// The serial number, hex bytes separated by colons (as `openssl x509 -serial` shows it).
    pub serial: String,
    /// The end of the validity period, RFC 3339.
    pub not_after: String,
}

/// Why a pair was refused, naming the file at fault, so that the log line tells the
/// operator which file to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairError {
    /// The file at fault (the key, when the key does not match the certificate).
    pub file: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

impl std::error::Error for PairError {}

impl PairFiles {
    /// Reads both files now. A key file that group or others may read counts as unreadable:
    /// its mode is taken from the open file, so it is the mode of the bytes read.
    pub fn read(&self) -> PairBytes {
        PairBytes {
            cert: std::fs::read(&self.cert).map_err(|e| format!("cannot read it: {e}")),
            key: read_private(&self.key),
        }
    }

    /// Reads and checks the pair as of `now`: [`PairFiles::read`], then [`PairBytes::check`].
    pub fn load(&self, now: OffsetDateTime) -> Result<Pair, PairError> {
        self.read().check(self, now)
    }
}

fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mode = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "the private key is readable by other users (mode {:o}); run chmod 600 on it",
            mode & 0o777
        ));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok(bytes)
}

impl PairBytes {
    /// A fingerprint of what was read (contents, or the read errors): equal fingerprints
    /// mean nothing changed. Not a cryptographic digest, and it need not be one: whoever can
    /// forge a collision can write the files anyway, and a pair is checked before use.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.cert.hash(&mut hasher);
        match &self.key {
            Ok(bytes) => Ok::<&[u8], &String>(bytes.as_slice()),
            Err(e) => Err(e),
        }
        .hash(&mut hasher);
        hasher.finish()
    }

    /// Checks the bytes as a pair as of `now`: see the module comment for what is checked.
    pub fn check(&self, files: &PairFiles, now: OffsetDateTime) -> Result<Pair, PairError> {
        let at = |file: &Path| {
            let file = file.to_path_buf();
            move |reason: String| PairError { file, reason }
        };
        let cert = self.cert.as_ref().map_err(|e| at(&files.cert)(e.clone()))?;
        let key = self.key.as_ref().map_err(|e| at(&files.key)(e.clone()))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| at(&files.cert)(format!("not a PEM certificate chain: {e}")))?;
        let leaf = chain
            .first()
            .ok_or_else(|| at(&files.cert)("holds no PEM certificate".to_owned()))?;
        let summary = summarize(leaf, now).map_err(at(&files.cert))?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| at(&files.key)(format!("not a PEM private key: {e}")))?;
        // The process's provider (`main` installs aws-lc-rs), the same one the listeners use.
        let keys = match rustls::crypto::CryptoProvider::get_default() {
            Some(provider) => provider.key_provider,
            None => rustls::crypto::aws_lc_rs::default_provider().key_provider,
        };
        let signing = keys
            .load_private_key(key)
            .map_err(|e| at(&files.key)(format!("not a usable private key: {e}")))?;
        let certified = CertifiedKey::new(chain, signing);
        // Stricter than rustls' own `CertifiedKey::from_der`, which lets a key whose public
        // half it cannot derive through: a pair that cannot be shown to match is refused.
        certified.keys_match().map_err(|e| {
            at(&files.key)(format!(
                "the private key does not match the certificate in {} ({e})",
                files.cert.display()
            ))
        })?;
        Ok(Pair {
            certified: Arc::new(certified),
            summary,
        })
    }
}

/// Parses the leaf: its subject, serial and expiry, refusing one that has expired (every
/// handshake would fail with it, which is worse than serving the old one a while longer).
fn summarize(leaf: &CertificateDer<'_>, now: OffsetDateTime) -> Result<Summary, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the first certificate does not parse: {e}"))?;
    let not_after = OffsetDateTime::from_unix_timestamp(parsed.validity().not_after.timestamp())
        .map_err(|e| format!("the certificate's expiry is out of range: {e}"))?;
    let not_after = not_after
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("the certificate's expiry cannot be written: {e}"))
        .and_then(|text| {
            if parsed.validity().not_after.timestamp() < now.unix_timestamp() {
                Err(format!("the certificate expired at {text}"))
            } else {
                Ok(text)
            }
        })?;
    Ok(Summary {
        subject: parsed.subject().to_string(),
        serial: parsed.raw_serial_as_string(),
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};
    use std::os::unix::fs::OpenOptionsExt;

    fn write(path: &Path, contents: &str, mode: u32) {
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .unwrap();
        std::io::Write::write_all(&mut file, contents.as_bytes()).unwrap();
    }

    /// A self-signed leaf for `localhost` valid until `not_after`, written to `dir`.
    fn pair_in(dir: &Path, name: &str, not_after: OffsetDateTime) -> (PairFiles, KeyPair) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_before = not_after - time::Duration::days(30);
        params.not_after = not_after;
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let files = PairFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        write(&files.cert, &cert.pem(), 0o644);
        write(&files.key, &key.serialize_pem(), 0o600);
        (files, key)
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn a_matching_pair_loads_and_names_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = pair_in(dir.path(), "served", now() + time::Duration::days(10));
        let pair = files.load(now()).unwrap();
        assert!(pair.summary.subject.contains("CN=served"), "{pair:?}");
        assert!(!pair.summary.serial.is_empty());
        assert_eq!(pair.summary.not_after, "2027-01-25T08:00:00Z");
    }

    #[test]
    fn the_key_of_another_certificate_is_refused_naming_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let later = now() + time::Duration::days(10);
        let (files, _) = pair_in(dir.path(), "one", later);
        let (other, _) = pair_in(dir.path(), "two", later);
        let mixed = PairFiles {
            cert: files.cert.clone(),
            key: other.key.clone(),
        };
        let error = mixed.load(now()).unwrap_err();
        assert_eq!(error.file, other.key);
        assert!(error.reason.contains("does not match"), "{error}");
    }

    #[test]
    fn garbage_in_either_file_is_refused_naming_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = pair_in(dir.path(), "served", now() + time::Duration::days(10));
        let good_cert = std::fs::read_to_string(&files.cert).unwrap();
        write(&files.key, "not a key", 0o600);
        assert_eq!(files.load(now()).unwrap_err().file, files.key);
        write(&files.key, "", 0o600);
        write(&files.cert, "not a certificate", 0o644);
        assert_eq!(files.load(now()).unwrap_err().file, files.cert);
        write(&files.cert, &good_cert, 0o644);
        assert_eq!(files.load(now()).unwrap_err().file, files.key);
    }

    #[test]
    fn a_key_readable_by_others_is_refused_with_the_chmod_advice() {
        let dir = tempfile::tempdir().unwrap();
        let (files, key) = pair_in(dir.path(), "served", now() + time::Duration::days(10));
        write(&files.key, &key.serialize_pem(), 0o640);
        let error = files.load(now()).unwrap_err();
        assert_eq!(error.file, files.key);
        assert!(error.reason.contains("chmod 600"), "{error}");
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (files, _) = pair_in(dir.path(), "old", now() - time::Duration::days(1));
        let error = files.load(now()).unwrap_err();
        assert_eq!(error.file, files.cert);
        assert!(error.reason.contains("expired"), "{error}");
    }

    #[test]
    fn the_fingerprint_changes_with_either_file_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let later = now() + time::Duration::days(10);
        let (files, _) = pair_in(dir.path(), "served", later);
        let first = files.read().fingerprint();
        assert_eq!(files.read().fingerprint(), first);
        let (other, _) = pair_in(dir.path(), "other", later);
        std::fs::copy(&other.key, &files.key).unwrap();
        let key_changed = files.read().fingerprint();
        assert_ne!(key_changed, first);
        std::fs::copy(&other.cert, &files.cert).unwrap();
        assert_ne!(files.read().fingerprint(), key_changed);
    }
}
