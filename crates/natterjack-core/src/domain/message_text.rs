use super::FieldError;
use super::text::{Layout, clean_text};

/// A message body: 1 to 4096 characters of NFC text; newline and tab allowed, other
/// control characters refused.
///
/// No `Debug` or `Display`: message contents are an asset and must not drift into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Longest accepted message, in Unicode scalar values after NFC normalisation.
    pub const MAX_CHARS: usize = 4096;

    /// Normalises and checks a message received from a client.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        clean_text(
            "message",
            input,
            Self::MAX_CHARS,
            Layout::MultiLine,
            "must be at most 4096 characters",
        )
        .map(Self)
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MessageText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageText({} chars)", self.0.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_allow_newlines_and_tabs_but_no_other_controls() {
        assert!(MessageText::parse("line one\n\tline two").is_ok());
        for bad in ["\r", "bell\u{7}", "nul\u{0}", "esc\u{1b}[31m"] {
            assert_eq!(
                MessageText::parse(bad).err().map(|e| e.field()),
                Some("message")
            );
        }
    }

    #[test]
    fn messages_are_limited_to_4096_characters() {
        assert!(MessageText::parse(&"ü".repeat(4096)).is_ok());
        assert!(MessageText::parse(&"a".repeat(4097)).is_err());
        assert!(MessageText::parse("").is_err());
    }

    #[test]
    fn message_debug_output_hides_the_text() {
        let m = MessageText::parse("top secret").ok();
        assert!(!format!("{m:?}").contains("secret"));
    }
}
