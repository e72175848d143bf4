use super::FieldError;
use std::fmt;

/// A login name matching `^[a-zA-Z][a-zA-Z0-9]{1,29}$`.
///
/// ASCII only so that no two different-looking names render alike; storage treats names
/// case-insensitively so `alice` and `Alice` cannot both exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Checks a username received from a client or the CLI.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let bytes = input.as_bytes();
        let valid = (2..=30).contains(&bytes.len())
            && bytes[0].is_ascii_alphabetic()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric());
        if valid {
            Ok(Self(input.to_owned()))
        } else {
            Err(FieldError::new(
                "username",
                "must be 2 to 30 ASCII letters or digits, starting with a letter",
            ))
        }
    }

    /// The name as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_pattern() {
        for ok in ["ab", "alice", "Bob42", &format!("a{}", "1".repeat(29))] {
            assert!(Username::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "a",
            "1abc",
            "_abc",
            "al ice",
            "alice!",
            "ålice",
            "alice\u{0}",
            "a'--",
            &format!("a{}", "1".repeat(30)),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
