use super::FieldError;
use super::text::{Layout, clean_text};
use std::fmt;

/// A space's display name: 1 to 255 characters of NFC text on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceName(String);

impl SpaceName {
    /// Longest accepted name, in Unicode scalar values after NFC normalisation.
    pub const MAX_CHARS: usize = 255;

    /// Normalises and checks a name received from a client.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        clean_text(
            "name",
            input,
            Self::MAX_CHARS,
            Layout::SingleLine,
            "must be at most 255 characters",
        )
        .map(Self)
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SpaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_names_are_nfc_normalised() {
        let decomposed = "Cafe\u{301}";
        assert_eq!(
            SpaceName::parse(decomposed).map(|n| n.as_str().to_owned()),
            Ok("Café".to_owned())
        );
    }

    #[test]
    fn space_names_refuse_empty_long_and_control_text() {
        assert!(SpaceName::parse("").is_err());
        assert!(SpaceName::parse(&"a".repeat(256)).is_err());
        assert!(SpaceName::parse(&"é".repeat(255)).is_ok());
        for bad in [
            "a\nb",
            "a\tb",
            "a\u{0}b",
            "a\u{7f}",
            "a\u{85}",
            "abc\u{202E}cba",
        ] {
            let err = SpaceName::parse(bad).err();
            assert_eq!(err.map(|e| e.field()), Some("name"), "{bad:?}");
        }
    }

    #[test]
    fn space_names_keep_sql_metacharacters_literally() {
        let name = "x'); DROP TABLE spaces; --";
        assert_eq!(
            SpaceName::parse(name).map(|n| n.as_str().to_owned()),
            Ok(name.to_owned())
        );
    }
}
