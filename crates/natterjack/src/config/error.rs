//! The configuration error, in a file of its own so that every section's checks can return it
//! without importing the module that assembles the sections.

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);
