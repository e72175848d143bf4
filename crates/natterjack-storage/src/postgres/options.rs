//! From an operator's `postgres://` URL to connection options, and back to the password a
//! role should get.

use super::errors::refuse;
use natterjack_core::ports::StoreError;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use std::path::Path;
use std::str::FromStr;

/// Parses a `postgres://` (or `postgresql://`) URL into connection options; when `ca_file`
/// is given, `sslmode=verify-full` / `verify-ca` (set in the URL) accept a server certificate
/// that chains to it. sqlx adds it to its built-in public roots rather than replacing them,
/// so a certificate from a public CA for the same host name is accepted too.
///
/// Errors never repeat the URL: it may hold a password.
pub fn connect_options(url: &str, ca_file: Option<&Path>) -> Result<PgConnectOptions, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(refuse(
            "the database URL must start with postgres:// or postgresql://",
        ));
    }
    let options = PgConnectOptions::from_str(url).map_err(|_| {
        refuse("the database URL does not parse (check user, host, port, database and sslmode)")
    })?;
    match ca_file {
        None => Ok(options),
        Some(path) if path.is_file() => Ok(options.ssl_root_cert(path)),
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

    #[test]
    fn a_ca_file_becomes_the_root_certificate() {
        let dir = std::env::temp_dir();
        let ca = dir.join(format!("nj-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "not checked until connect").unwrap();
        let options = connect_options(
            "postgres://nj_app@localhost/natterjack?sslmode=verify-full",
            Some(&ca),
        )
        .unwrap();
        let url = options.to_url_lossy().to_string();
        std::fs::remove_file(&ca).unwrap();
        assert!(url.contains("sslrootcert="), "{url}");
        assert!(url.contains("sslmode=verify-full"), "{url}");
    }
}
