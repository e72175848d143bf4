use std::fmt;

/// A value refused by an allow list, with the name of the field it came from.
///
/// The reason describes the rule that was broken, never the refused value itself, so an error
/// response can never echo a secret or an injection payload back to a client or into a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: &'static str,
    reason: &'static str,
}

impl FieldError {
    /// Builds an error for `field` breaking the rule described by `reason`.
    pub const fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }

    /// The API field name, as clients spell it.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The rule that was broken, safe to show to the client.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}
