//! The certificate the public listeners present, replaceable while they run. Both listeners'
//! rustls configurations resolve their certificate here, so a reload changes what every new
//! handshake presents, on REST and gRPC at once, while the configurations themselves
//! (versions, ALPN, the client verifier, the cipher order) stay built once. A connection
//! already open keeps the certificate it was handshaken with: rustls resolves once per
//! handshake.

use super::pair::{Pair, PairError, PairFiles, Summary};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, PoisonError, RwLock};
use time::OffsetDateTime;

/// The server certificate in use and the files it comes from. Replaced only by a pair that
/// passed every check of [`PairBytes::check`](super::pair::PairBytes::check), so a bad new
/// pair can never take the place of a working one.
#[derive(Debug)]
pub struct ServedCertificate {
    files: PairFiles,
    current: RwLock<Served>,
}

#[derive(Debug, Clone)]
struct Served {
    certified: Arc<CertifiedKey>,
    summary: Summary,
    fingerprint: u64,
}

impl ServedCertificate {
    /// Loads the pair in `files` as of `now`; start-up stops on the error, since without a
    /// first certificate there is nothing to keep serving.
    pub fn load(files: PairFiles, now: OffsetDateTime) -> Result<Self, PairError> {
        let bytes = files.read();
        let pair = bytes.check(&files, now)?;
        Ok(Self {
            files,
            current: RwLock::new(Served {
                certified: pair.certified,
                summary: pair.summary,
                fingerprint: bytes.fingerprint(),
            }),
        })
    }

    /// The files this certificate is read from.
    pub fn files(&self) -> &PairFiles {
        &self.files
    }

    /// The certificate new handshakes present now, in words.
    pub fn summary(&self) -> Summary {
        self.read().summary
    }

    /// The [`fingerprint`](super::pair::PairBytes::fingerprint) of the files' contents the
    /// certificate in use was read from, so the reloader knows what it has already seen.
    pub fn fingerprint(&self) -> u64 {
        self.read().fingerprint
    }

    /// Makes `pair`, read from files of `fingerprint`, the certificate of every handshake
    /// from now on.
    pub fn replace(&self, pair: Pair, fingerprint: u64) {
        // The lock only guards the swap of two values: a writer that panicked cannot have
        // left them half-written, so a poisoned lock is used as it stands.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Served {
            certified: pair.certified,
            summary: pair.summary,
            fingerprint,
        };
    }

    fn read(&self) -> Served {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for ServedCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // One certificate for every name, as `with_single_cert` would serve it.
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .certified
                .clone(),
        )
    }
}
