//! Reading the service account's password from its file at start-up, so that the password
//! is neither in the configuration file nor in the process's arguments or environment.

use super::error::LdapSetupError;
use crate::secret_file::read_secret_file;
use secrecy::SecretString;
use std::path::Path;

/// The password in `path`, without one trailing newline (`\n` or `\r\n`). Refuses an
/// unreadable, empty or NUL-holding file; the error never quotes the file's content.
pub(crate) fn read_password_file(path: &Path) -> Result<SecretString, LdapSetupError> {
    read_secret_file(path, "LDAP bind password")
        .map_err(|message| LdapSetupError::new("bind_password_file", message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn file_with(content: &[u8]) -> (std::path::PathBuf, impl Drop) {
        struct Remove(std::path::PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let mut bytes = [0_u8; 8];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut bytes)
            .unwrap();
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("natterjack-ldap-pw-{name}"));
        std::fs::write(&path, content).unwrap();
        (path.clone(), Remove(path))
    }

    #[test]
    fn one_trailing_newline_is_trimmed() {
        for content in [&b"s3cret\n"[..], b"s3cret\r\n", b"s3cret"] {
            let (path, _remove) = file_with(content);
            let password = read_password_file(&path).unwrap();
            assert_eq!(password.expose_secret(), "s3cret");
        }
    }

    #[test]
    fn inner_spaces_are_kept() {
        let (path, _remove) = file_with(b" pass phrase \n");
        assert_eq!(
            read_password_file(&path).unwrap().expose_secret(),
            " pass phrase "
        );
    }

    #[test]
    fn an_empty_multi_line_or_nul_file_is_refused_without_quoting_it() {
        for content in [&b""[..], b"\n", b"one\ntwo\n", b"a\0b"] {
            let (path, _remove) = file_with(content);
            let refused = read_password_file(&path).unwrap_err().to_string();
            assert!(refused.contains("bind_password_file"), "{refused}");
            assert!(
                !refused.contains("two") && !refused.contains("a\0b"),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_refused_naming_the_setting() {
        let refused = read_password_file(Path::new("/nonexistent/natterjack-pw"))
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with("[auth.ldap] bind_password_file:"),
            "{refused}"
        );
    }
}
