//! Certificates the tests make themselves, for the tests that hand the server an operator's
//! pair and replace it while it runs: CAs of the test's own (rcgen), the server and client
//! certificates they issue, and files replaced as an operator's tooling should replace them
//! (written beside the target, then renamed over it).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A certificate authority that lives for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A certificate and its key, as PEM files hold them, with the certificate's DER to compare
/// with what a handshake presents.
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
}

impl TestCa {
    /// A CA named `name` (distinct from its leaves' names, so no tool sees them as
    /// self-signed).
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`, subject `CN=name`.
    pub fn server(&self, name: &str) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A gRPC client certificate naming `user` (the SAN URI the listener maps to a user).
    pub fn client(&self, user: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, user);
        params.subject_alt_names = vec![SanType::URI(
            format!("natterjack:user:{user}").try_into().unwrap(),
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Leaf {
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_pem = cert.pem();
        Leaf {
            der: CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap(),
            cert_pem,
            key_pem: key.serialize_pem(),
        }
    }
}

/// Replaces `path` with `contents` at once: written to a file beside it with `mode` from
/// the first byte, then renamed over it, so a reader sees the old file or the new one, never
/// half of one.
pub fn replace_file(path: &Path, contents: &str, mode: u32) {
    let staged = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staged)
        .unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    file.sync_all().unwrap();
    std::fs::rename(&staged, path).unwrap();
}
