//! The one error type of start-up and of the CLI commands. It has a module of its own because
//! every stage of start-up returns it (storage, assembly, the commands): kept in any one of
//! them, the others would have to import that stage just to name their error.

use crate::config::ConfigError;

/// A start-up failure, with a message meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else that stops start-up.
    #[error("{0}")]
    Other(String),
}
