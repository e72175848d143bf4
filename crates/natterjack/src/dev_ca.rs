//! A development certificate authority and server certificate, generated on first start so
//! that the embedded default speaks HTTPS with no setup.
//!
//! Files in the data directory: `ca.pem` (give it to clients: `curl --cacert`),
//! `ca-key.pem` (0600), `server.pem`, `server-key.pem` (0600). They are reused on the next
//! start. The server certificate lives [`LEAF_DAYS`] days, as short-lived certificates
//! should (a stolen key is useful for weeks, not years, and TLS scanners' Mozilla profiles
//! expect it); one that is missing, expires within [`RENEW_WITHIN_DAYS`] days, or does not
//! parse is re-issued from the existing CA on start, so clients keep trusting it. The CA
//! and the server certificate have distinct subject names, so tools never mistake the leaf
//! for a self-signed certificate.

use natterjack_core::clock::{Clock, SystemClock};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Subject common name of the development CA.
pub const CA_NAME: &str = "Natterjack Development CA";
/// Subject common name of the development server certificate.
pub const SERVER_NAME: &str = "Natterjack development server";

/// Lifetime of the development server and client certificates, in days.
pub const LEAF_DAYS: i64 = 90;

/// A development server certificate expiring within this many days is renewed on start.
pub const RENEW_WITHIN_DAYS: i64 = 30;

/// Paths of the development PKI files.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// The CA certificate clients should trust.
    pub ca_cert: PathBuf,
    /// The CA's private key (0600).
    pub ca_key: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server's private key (0600).
    pub server_key: PathBuf,
}

impl DevPki {
    /// The file names inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
        }
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Natterjack (development only)");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Writes `contents` to `path` readable by the owner only; a private key is never world
/// readable, not even for a moment.
fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_public(path: &Path, contents: &str) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Refuses to use a private key that others can read, and says how to fix it.
pub fn check_private(path: &Path) -> Result<(), String> {
    let mode = fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "private key {} is readable by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

fn ca_params() -> Result<CertificateParams, String> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name = name(CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemClock.wall().to_date_time();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    Ok(params)
}

fn server_params() -> Result<CertificateParams, String> {
    let sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut params = CertificateParams::new(sans).map_err(|e| e.to_string())?;
    params.distinguished_name = name(SERVER_NAME);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = SystemClock.wall().to_date_time();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(LEAF_DAYS);
    Ok(params)
}

/// Why the server certificate at `path` must be issued again, if it must: it is missing,
/// unreadable, or expires within [`RENEW_WITHIN_DAYS`] days.
fn renewal_reason(path: &Path) -> Option<String> {
    let Ok(pem) = fs::read(path) else {
        return Some("there was none".to_owned());
    };
    let not_after = x509_parser::pem::parse_x509_pem(&pem)
        .ok()
        .and_then(|(_, pem)| {
            pem.parse_x509()
                .ok()
                .map(|cert| cert.validity().not_after.timestamp())
        })
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
    let Some(not_after) = not_after else {
        return Some("the old one could not be read".to_owned());
    };
    let left = not_after - SystemClock.wall().to_date_time();
    (left < Duration::days(RENEW_WITHIN_DAYS)).then(|| {
        if left.is_negative() {
            format!("the old one expired {} days ago", -left.whole_days())
        } else {
            format!("the old one expires in {} days", left.whole_days())
        }
    })
}

/// Makes sure the development CA and server certificate exist in `dir`, creating what is
/// missing, and checks that the private keys are private.
pub fn ensure(dir: &Path) -> Result<DevPki, String> {
    let pki = DevPki::in_dir(dir);
    let ca_exists = pki.ca_cert.is_file() && pki.ca_key.is_file();
    let issuer = if ca_exists {
        check_private(&pki.ca_key)?;
        let key_pem = fs::read_to_string(&pki.ca_key)
            .map_err(|e| format!("cannot read {}: {e}", pki.ca_key.display()))?;
        let cert_pem = fs::read_to_string(&pki.ca_cert)
            .map_err(|e| format!("cannot read {}: {e}", pki.ca_cert.display()))?;
        let key =
            KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", pki.ca_key.display()))?;
        Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| format!("{}: {e}", pki.ca_cert.display()))?
    } else {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let params = ca_params()?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        write_private(&pki.ca_key, &key.serialize_pem())?;
        write_public(&pki.ca_cert, &cert.pem())?;
        // A new CA invalidates any server certificate issued by an old one.
        let _ = fs::remove_file(&pki.server_cert);
        Issuer::new(params, key)
    };
    let renew = if pki.server_key.is_file() {
        check_private(&pki.server_key)?;
        renewal_reason(&pki.server_cert)
    } else {
        Some("there was none".to_owned())
    };
    if let Some(why) = renew {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = server_params()?
            .signed_by(&key, &issuer)
            .map_err(|e| e.to_string())?;
        write_private(&pki.server_key, &key.serialize_pem())?;
        write_public(&pki.server_cert, &cert.pem())?;
        tracing::info!(
            dir = %dir.display(),
            days = LEAF_DAYS,
            "issued a development server certificate ({why})"
        );
    }
    Ok(pki)
}

/// A client certificate issued by [`issue_client`].
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, 0600).
    pub key: PathBuf,
}

fn client_params(username: &str) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name = name(username);
    params.subject_alt_names = vec![rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from(format!("natterjack:user:{username}"))
            .map_err(|e| e.to_string())?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let now = SystemClock.wall().to_date_time();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(LEAF_DAYS);
    Ok(params)
}

/// Issues a client certificate for `username` from the development CA in `dir`: SAN URI
/// `natterjack:user:NAME` (what the gRPC listener maps to the principal), client-auth only,
/// valid 90 days. Writes `NAME.pem` and `NAME-key.pem` (0600) into `out`; refuses to
/// overwrite an existing key.
pub fn issue_client(dir: &Path, username: &str, out: &Path) -> Result<ClientCert, String> {
    let pki = ensure(dir)?;
    let key_pem = fs::read_to_string(&pki.ca_key)
        .map_err(|e| format!("cannot read {}: {e}", pki.ca_key.display()))?;
    let cert_pem = fs::read_to_string(&pki.ca_cert)
        .map_err(|e| format!("cannot read {}: {e}", pki.ca_cert.display()))?;
    let ca_key =
        KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", pki.ca_key.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, ca_key)
        .map_err(|e| format!("{}: {e}", pki.ca_cert.display()))?;
    fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let issued = ClientCert {
        cert: out.join(format!("{username}.pem")),
        key: out.join(format!("{username}-key.pem")),
    };
    if issued.key.exists() {
        return Err(format!(
            "{} exists; remove it first to issue a new certificate",
            issued.key.display()
        ));
    }
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = client_params(username)?
        .signed_by(&key, &issuer)
        .map_err(|e| e.to_string())?;
    write_private(&issued.key, &key.serialize_pem())?;
    write_public(&issued.cert, &cert.pem())?;
    Ok(issued)
}
