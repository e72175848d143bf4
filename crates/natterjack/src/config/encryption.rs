//! `[encryption]`: where the key-encryption key comes from, and how fast rotation re-seals.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;

/// `[encryption]`. At most one key source may be set; with none, the key is the file
/// `<data_dir>/encryption.key`, generated (0600) for a database that holds no data key yet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// The key-encryption key itself, 64 hex digits: meant for the environment
    /// (`NATTERJACK_ENCRYPTION__KEY`) of a service manager that injects secrets.
    pub key: Option<SecretString>,
    /// A file holding the key (64 hex digits), refused unless only its owner can read it.
    pub key_file: Option<PathBuf>,
    /// A command (program and arguments, no shell) whose standard output is the key: for a
    /// KMS or a secret manager. Run once at start with an empty environment apart from
    /// `PATH` and `HOME`, and at most 10 seconds.
    pub key_command: Option<Vec<String>>,
    /// Rows of each table a re-sealing batch takes in one transaction. Default 250.
    pub reseal_batch: u32,
    /// Pause between two re-sealing batches, in milliseconds, so rotation leaves the
    /// database to the requests. Default 20.
    pub reseal_pause_ms: u64,
    /// How often a server re-reads the data keys, in seconds: a key made current by
    /// `natterjack keys rotate` is used by every server's writes within this time.
    /// Default 2.
    pub key_poll_secs: u64,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        Self {
            key: None,
            key_file: None,
            key_command: None,
            reseal_batch: 250,
            reseal_pause_ms: 20,
            key_poll_secs: 2,
        }
    }
}

impl EncryptionConfig {
    /// Settings that must be at least 1, by name.
    pub(super) fn positive(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("encryption.reseal_batch", u64::from(self.reseal_batch)),
            ("encryption.key_poll_secs", self.key_poll_secs),
        ]
    }

    /// Refuses more than one key source, and an empty command.
    pub(super) fn check(&self) -> Result<(), String> {
        let sources = [
            self.key.is_some(),
            self.key_file.is_some(),
            self.key_command.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(
                "give one of encryption.key, encryption.key_file and encryption.key_command".into(),
            );
        }
        if self.key_command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err("encryption.key_command needs at least the program to run".into());
        }
        Ok(())
    }
}
