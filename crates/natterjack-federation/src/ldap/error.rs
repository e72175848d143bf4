//! Why the LDAP adapter could not be set up: shown to the operator at start-up, so each
//! error names the `[auth.ldap]` setting at fault.

/// A configuration the adapter refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LdapSetupError {
    /// A setting's value is unusable.
    #[error("[auth.ldap] {setting}: {message}")]
    Setting {
        /// The setting's name, as written in the configuration file.
        setting: &'static str,
        /// What is wrong with it, as a sentence (never holds a password).
        message: String,
    },
}

impl LdapSetupError {
    /// An error about `setting`.
    pub(crate) fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self::Setting {
            setting,
            message: message.into(),
        }
    }

    /// The name of the setting at fault, for callers that point the operator at it.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::Setting { setting, .. } => setting,
        }
    }
}
