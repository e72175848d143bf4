//! TLS to an identity provider: rustls with the process's crypto provider, trusting either
//! the system's roots or one configured CA file (never both, never nothing).

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// Why a TLS client configuration could not be built. Start-up errors: they name the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {detail}")]
    CaFile {
        /// The configured path.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The system has no usable root certificates.
    #[error("no system root certificates could be loaded: {0}")]
    SystemRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The roots a connection to a provider trusts: the certificates of `ca_file` when given,
/// otherwise the system's roots.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let fail = |detail: String| TlsError::CaFile {
                path: path.display().to_string(),
                detail,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| fail(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(e.to_string()))?;
            if certs.is_empty() {
                return Err(fail("no PEM certificate in it".to_owned()));
            }
            for cert in certs {
                store.add(cert).map_err(|e| fail(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system bundle may hold certificates rustls cannot parse; skip those.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(TlsError::SystemRoots(format!("{:?}", found.errors)));
            }
        }
    }
    Ok(store)
}

/// A client configuration (TLS 1.2 and 1.3, the process's default crypto provider) that
/// trusts [`roots`].
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
