//! The one text rule shared by every free-text field.

use super::FieldError;
use unicode_normalization::UnicodeNormalization;

/// Which layout characters a field may contain besides printable text.
#[derive(Clone, Copy)]
pub(crate) enum Layout {
    /// A single line: no control characters at all.
    SingleLine,
    /// Multi-line text: newline and tab are allowed, other control characters are not.
    MultiLine,
}

/// Bidirectional overrides and isolates: invisible characters that reorder how text is
/// displayed (the "Trojan Source" trick), refused like control characters.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// NFC-normalises `input` and checks it against the shared allow list: between 1 and `max`
/// characters after normalisation, no control characters (per `layout`), no bidi controls.
pub(crate) fn clean_text(
    field: &'static str,
    input: &str,
    max: usize,
    layout: Layout,
    too_long: &'static str,
) -> Result<String, FieldError> {
    let normalized: String = input.nfc().collect();
    let count = normalized.chars().count();
    if count == 0 {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if count > max {
        return Err(FieldError::new(field, too_long));
    }
    let allowed_layout = |c: char| matches!(layout, Layout::MultiLine) && (c == '\n' || c == '\t');
    if normalized
        .chars()
        .any(|c| (c.is_control() && !allowed_layout(c)) || is_bidi_control(c))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(normalized)
}
