use super::{FieldError, Username};
use secrecy::{ExposeSecret, SecretString};

/// Shortest accepted password, in bytes of UTF-8.
pub const MIN_PASSWORD_BYTES: usize = 8;
/// Longest accepted password, in bytes of UTF-8; also bounds the work of a login attempt.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// A password chosen by a user, checked against the password policy: 8 to 256 bytes and not
/// among the most guessable passwords (zxcvbn score below 2, counting the username as a
/// known word).
///
/// Holds the secret in a `SecretString`, which zeroises its memory on drop and has a
/// redacting `Debug`.
pub struct NewPassword(SecretString);

impl NewPassword {
    /// Applies the password policy for an account named `username`.
    pub fn parse(candidate: SecretString, username: &Username) -> Result<Self, FieldError> {
        let text = candidate.expose_secret();
        if text.len() < MIN_PASSWORD_BYTES {
            return Err(FieldError::new("password", "must be at least 8 bytes"));
        }
        if text.len() > MAX_PASSWORD_BYTES {
            return Err(FieldError::new("password", "must be at most 256 bytes"));
        }
        if text.chars().any(char::is_control) {
            // A control character cannot be typed at a login prompt or sent in a Basic
            // header, so such a password could never be used.
            return Err(FieldError::new(
                "password",
                "must not contain control characters",
            ));
        }
        let strength = zxcvbn::zxcvbn(text, &[username.as_str()]);
        if (strength.score() as u8) < 2 {
            return Err(FieldError::new(
                "password",
                "is too common or too easy to guess; choose a longer, less predictable one",
            ));
        }
        Ok(Self(candidate))
    }

    /// The secret, for the password hasher only.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Username {
        Username::parse("alice").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_most_common_passwords_are_refused() {
        for common in [
            "password",
            "12345678",
            "qwertyuiop",
            "iloveyou1",
            "password1",
            "alice123",
        ] {
            let refused = NewPassword::parse(SecretString::from(common), &alice()).is_err();
            assert!(refused, "{common:?} should be refused");
        }
    }

    #[test]
    fn passwords_outside_8_to_256_bytes_are_refused() {
        assert!(NewPassword::parse(SecretString::from("Zq7!x"), &alice()).is_err());
        let long = "correct horse battery staple ".repeat(9);
        assert!(long.len() > 256);
        assert!(NewPassword::parse(SecretString::from(long), &alice()).is_err());
    }

    #[test]
    fn passwords_with_control_characters_are_refused() {
        let refused =
            NewPassword::parse(SecretString::from("violet-anvil-73-harbour\u{0}"), &alice());
        assert!(refused.is_err());
    }

    #[test]
    fn a_long_unpredictable_password_is_accepted() {
        let ok = NewPassword::parse(SecretString::from("violet-anvil-73-harbour"), &alice());
        assert!(ok.is_ok());
    }
}
