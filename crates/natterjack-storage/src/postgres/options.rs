//! From an operator's `postgres://` URL to connection options, and back to the password a
//! role should get.

use super::errors::refuse;
use super::target::PgTarget;
use natterjack_core::ports::StoreError;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use std::path::Path;
use std::str::FromStr;

/// Parses a `postgres://` (or `postgresql://`) URL into the way to the database. When
/// `ca_file` is given and the URL says `sslmode=verify-full` (or `verify-ca`), the server's
/// certificate must chain to a certificate in that file and to nothing else: sqlx 0.8 would
/// add the file to its built-in public roots (so a certificate from any public CA for the
/// host name would pass) and takes no TLS configuration of ours, so the connections go
/// through an in-process forwarder that runs the handshake with a root store holding the
/// file's certificates alone (`tls/`). Every other part of the URL (role, password,
/// database, application name, statement cache...) stays as given. Under a weaker `sslmode`
/// the file is not used. Needs the Tokio runtime when `ca_file` applies.
///
/// Errors never repeat the URL: it may hold a password.
pub fn connect_options(url: &str, ca_file: Option<&Path>) -> Result<PgTarget, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(refuse(
            "the database URL must start with postgres:// or postgresql://",
        ));
    }
    let options = PgConnectOptions::from_str(url).map_err(|_| {
        refuse("the database URL does not parse (check user, host, port, database and sslmode)")
    })?;
    match ca_file {
        None => Ok(PgTarget::direct(options)),
        Some(path) if path.is_file() => PgTarget::with_ca_file(options, path),
        Some(path) => Err(refuse(format!(
            "the database CA file {} does not exist or is not a file",
            path.display()
        ))),
    }
}

/// The password the options would log in with, if any.
///
/// sqlx offers no getter for it; its lossy URL form carries it percent-encoded, so this
/// decodes it from there. Used only to compute a SCRAM verifier for `db init`.
pub(crate) fn password_of(options: &PgConnectOptions) -> Result<Option<String>, StoreError> {
    let url = options.to_url_lossy();
    match url.password() {
        None => Ok(None),
        Some(encoded) => percent_decode(encoded)
            .map(Some)
            .ok_or_else(|| refuse("the database password is not valid UTF-8")),
    }
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
fn percent_decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use sqlx::postgres::PgSslMode;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn user_database_and_password_come_from_the_url() {
        let options = connect_options(
            "postgres://nj_app:s%3Acret%40x%2F%25@db.example:5433/natterjack?sslmode=verify-full",
            None,
        )
        .unwrap();
        assert_eq!(options.get_username(), "nj_app");
        assert_eq!(options.get_database(), Some("natterjack"));
        assert_eq!(options.get_port(), 5433);
        assert_eq!(
            password_of(&options).unwrap().as_deref(),
            Some("s:cret@x/%")
        );
    }

    #[test]
    fn a_url_without_a_password_yields_none() {
        let options = connect_options("postgres://nj_app@localhost/natterjack", None).unwrap();
        if std::env::var_os("PGPASSWORD").is_none() {
            assert_eq!(password_of(&options).unwrap(), None);
        }
    }

    #[test]
    fn errors_never_repeat_the_url() {
        for url in [
            "mysql://root:hunter2@localhost/db",
            "postgres://root:hunter2@localhost:99999/db",
            "postgres://root:hunter2@localhost/db?sslmode=hunter2",
        ] {
            let err = connect_options(url, None).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_missing_ca_file_is_refused_by_name() {
        let err = connect_options(
            "postgres://nj_app@localhost/natterjack?sslmode=verify-full",
            Some(Path::new("/nonexistent/ca.pem")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    fn test_ca() -> String {
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Natterjack options test CA");
        params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem()
    }

    #[tokio::test]
    async fn under_verify_full_a_ca_file_leads_through_a_private_forwarder_keeping_the_rest_of_the_url()
     {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, test_ca()).unwrap();
        let target = connect_options(
            "postgres://nj_app:pw@db.example:5433/natterjack?sslmode=verify-full&application_name=nj&statement-cache-capacity=7",
            Some(&ca),
        )
        .unwrap();
        assert!(target.trusts_ca_file_alone());
        assert!(
            matches!(target.get_ssl_mode(), PgSslMode::Disable),
            "sqlx must not add its own TLS"
        );
        let socket_dir = target.get_socket().unwrap().clone();
        let mode = std::fs::metadata(&socket_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", socket_dir.display());
        assert!(socket_dir.join(".s.PGSQL.5433").exists());
        assert_eq!(target.get_username(), "nj_app");
        assert_eq!(target.get_database(), Some("natterjack"));
        assert_eq!(target.get_host(), "db.example");
        assert_eq!(target.get_application_name(), Some("nj"));
        assert_eq!(password_of(&target).unwrap().as_deref(), Some("pw"));
        let url = target.to_url_lossy().to_string();
        assert!(url.contains("statement-cache-capacity=7"), "{url}");

        let clone = target.clone();
        drop(target);
        assert!(socket_dir.exists(), "a clone must keep the forwarder");
        drop(clone);
        assert!(
            !socket_dir.exists(),
            "the private directory outlived its forwarder"
        );
    }

    #[tokio::test]
    async fn under_a_weaker_sslmode_the_ca_file_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, test_ca()).unwrap();
        for mode in ["disable", "prefer", "require"] {
            let target = connect_options(
                &format!("postgres://nj_app@db.example/natterjack?sslmode={mode}"),
                Some(&ca),
            )
            .unwrap();
            assert!(!target.trusts_ca_file_alone(), "{mode}");
            assert!(target.get_socket().is_none(), "{mode}");
        }
    }

    #[tokio::test]
    async fn a_ca_file_without_a_certificate_or_a_socket_url_under_verify_full_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "no certificate here").unwrap();
        let err = connect_options(
            "postgres://nj_app@localhost/natterjack?sslmode=verify-full",
            Some(&ca),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("ca.pem") && err.contains("no PEM certificate"),
            "{err}"
        );

        std::fs::write(&ca, test_ca()).unwrap();
        let err = connect_options(
            "postgres://nj_app@%2Fvar%2Frun%2Fpostgresql/natterjack?sslmode=verify-full",
            Some(&ca),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("Unix socket"), "{err}");
    }
}
