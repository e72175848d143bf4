//! What the database's certificate is checked against when `database.ca_file` is set:
//! exactly the certificates in that file, nothing built in, nothing from the system.
//!
//! sqlx 0.8 cannot do this itself: its rustls path starts from the public web roots
//! (`webpki-roots`) and adds `sslrootcert` to them, and it takes no rustls configuration of
//! ours. So the forwarder (`forwarder.rs`) runs the handshake with the configuration built
//! here.

use super::super::errors::refuse;
use natterjack_core::ports::StoreError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;

/// How much of the certificate is checked: the URL's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// `verify-full`: the chain to a certificate of the file, and the URL's host name.
    Full,
    /// `verify-ca`: the chain to a certificate of the file only, as libpq defines it.
    ChainOnly,
}

/// The certificates of `ca_file` as a root store: every one of them, and only them.
///
/// Refused, naming the file, when it cannot be read, holds no PEM certificate, or holds one
/// that cannot be a root.
pub(crate) fn roots(ca_file: &Path) -> Result<RootCertStore, StoreError> {
    let fail = |detail: String| {
        refuse(format!(
            "the database CA file {}: {detail}",
            ca_file.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".to_owned()));
    }
    let mut store = RootCertStore::empty();
    for cert in certs {
        store.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    Ok(store)
}

/// The rustls client configuration of the database's TLS: TLS 1.2 and 1.3 on the process's
/// crypto provider (aws-lc-rs), trusting [`roots`] alone, checking as `check` says.
pub(crate) fn client_config(ca_file: &Path, check: Check) -> Result<Arc<ClientConfig>, StoreError> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let roots = Arc::new(roots(ca_file)?);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| refuse(format!("TLS configuration for the database: {e}")))?;
    let config = match check {
        Check::Full => builder.with_root_certificates(roots).with_no_client_auth(),
        Check::ChainOnly => {
            let chain = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| refuse(format!("TLS configuration for the database: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// `verify-ca`: rustls's own verifier with its name check's verdict ignored. rustls checks
/// the chain (signatures, validity, key usage) before the name, so a certificate that fails
/// the name check has passed everything else; any other failure stands.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    fn ca(name: &str) -> String {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .pem()
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[test]
    fn the_root_store_holds_exactly_the_certificates_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, ca("Test CA one") + &ca("Test CA two")).unwrap();
        let store = roots(&file).unwrap();
        assert_eq!(store.len(), 2, "a root not from the file, or one missing");
        assert!(contains(&store.roots[0].subject, "Test CA one"));
        assert!(contains(&store.roots[1].subject, "Test CA two"));

        std::fs::write(&file, ca("Test CA one")).unwrap();
        let store = roots(&file).unwrap();
        assert_eq!(store.len(), 1);
        assert!(contains(&store.roots[0].subject, "Test CA one"));
    }

    #[test]
    fn a_file_without_a_certificate_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.pem");
        std::fs::write(&file, "not a certificate").unwrap();
        let err = roots(&file).unwrap_err().to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = roots(&dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
