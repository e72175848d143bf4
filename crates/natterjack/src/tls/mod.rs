//! The public listeners' rustls configurations: TLS 1.3 and 1.2 only, the server's cipher
//! order; ALPN h2 and http/1.1 for REST, h2 with a required client certificate for gRPC.
//! Both present the one [`ServedCertificate`], which a reload replaces without rebuilding
//! them.

pub mod pair;
pub mod reload;
pub mod served;

pub use pair::{Pair, PairError, PairFiles, Summary};
pub use served::ServedCertificate;

use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// The TLS settings both public listeners share, around their choice of client
/// authentication: versions 1.3 and 1.2 only, and the server's own order of cipher suites.
/// rustls offers only forward-secret AEAD suites, no compression and no renegotiation, and
/// lists the strongest first; honouring that order (`ignore_client_order`) means a client
/// that prefers a weaker suite still gets the strongest both support.
fn finish(
    builder: rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>,
    certificate: Arc<ServedCertificate>,
    alpn: &[&[u8]],
) -> Arc<ServerConfig> {
    let mut config = builder.with_cert_resolver(certificate);
    config.ignore_client_order = true;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn versions() -> rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier> {
    ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
}

/// The REST listener's configuration: no client certificates, ALPN `h2` and `http/1.1`,
/// presenting whatever `certificate` holds at each handshake.
pub fn server_config(certificate: Arc<ServedCertificate>) -> Arc<ServerConfig> {
    finish(
        versions().with_no_client_auth(),
        certificate,
        &[b"h2", b"http/1.1"],
    )
}

/// The public gRPC listener's configuration: a client certificate chained to `client_ca`
/// is required in the handshake (mutual TLS), and ALPN offers `h2` only. It presents the
/// REST listener's `certificate`, so one reload serves both.
pub fn grpc_server_config(
    certificate: Arc<ServedCertificate>,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, String> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder(Arc::new(client_roots(client_ca)?))
            .build()
            .map_err(|e| format!("grpc.client_ca {}: {e}", client_ca.display()))?;
    Ok(finish(
        versions().with_client_cert_verifier(verifier),
        certificate,
        &[b"h2"],
    ))
}

/// The certificates in `path` that can anchor client certificates, refused when there is
/// none, so a broken `grpc.client_ca` stops start-up instead of silently killing the gRPC
/// listener.
fn client_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("cannot read the client CA {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "no usable CA certificate in {} (grpc.client_ca)",
            path.display()
        ));
    }
    Ok(roots)
}
