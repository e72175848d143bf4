use crate::cli::KeysCommand;
use crate::config::Config;
use crate::start_error::StartError;
use natterjack_core::clock::{Clock, SystemClock};
use natterjack_storage::rotation::{KeyUsage, ResealBatch, reseal_pass};
use natterjack_storage::sealing::KeyEncryptionKey;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

fn other(e: impl std::fmt::Display) -> StartError {
    StartError::Other(e.to_string())
}

fn print_usage(usage: &[KeyUsage]) {
    println!(
        "{:>4}  {:<9}  {:>10}  {:>7}",
        "key", "state", "messages", "spaces"
    );
    for key in usage {
        let state = if key.current {
            "current"
        } else if key.destroyed {
            "destroyed"
        } else {
            "retired"
        };
        println!(
            "{:>4}  {state:<9}  {:>10}  {:>7}",
            key.key, key.messages, key.spaces
        );
    }
}

/// Rows not yet under the current key.
fn remaining(usage: &[KeyUsage]) -> u64 {
    usage
        .iter()
        .filter(|k| !k.current)
        .map(|k| k.messages + k.spaces)
        .sum()
}

/// A progress bar on a terminal, a line every few seconds otherwise (logs, CI).
struct Progress {
    total: u64,
    done: u64,
    terminal: bool,
    last_line: Instant,
}

impl Progress {
    fn show(&mut self, batch: &ResealBatch) {
        self.done += batch.resealed + batch.unreadable;
        let total = self.total.max(self.done).max(1);
        let share = self.done as f64 / total as f64;
        if self.terminal {
            let filled = (share * 30.0).round() as usize;
            eprint!(
                "\r[{}{}] {:>5.1}%  {}/{} rows",
                "#".repeat(filled),
                ".".repeat(30 - filled.min(30)),
                share * 100.0,
                self.done,
                total
            );
            let _ = std::io::stderr().flush();
        } else if SystemClock.now().duration_since(self.last_line) >= Duration::from_secs(5)
            || batch.finished
        {
            eprintln!(
                "re-sealed {}/{} rows ({:.1}%)",
                self.done,
                total,
                share * 100.0
            );
            self.last_line = SystemClock.now();
        }
    }
}

/// Runs a `keys` subcommand.
pub(super) async fn run(cfg: &Config, command: KeysCommand) -> Result<(), StartError> {
    let keyring = match &command {
        KeysCommand::Status => crate::storage::keyring(cfg).await?,
        KeysCommand::Rotate { .. } => crate::storage::keyring_as_owner(cfg, "keys rotate").await?,
        KeysCommand::Destroy { .. } => {
            crate::storage::keyring_as_owner(cfg, "keys destroy").await?
        }
        KeysCommand::Rewrap { .. } => crate::storage::keyring_as_owner(cfg, "keys rewrap").await?,
    };
    match command {
        KeysCommand::Status => {
            let store = crate::storage::open(cfg, keyring.clone()).await?;
            let usage = store.resealing().key_usage().await.map_err(other)?;
            println!("key-encryption key {}", keyring.kek().id());
            print_usage(&usage);
            let left = remaining(&usage);
            if left > 0 {
                println!("{left} rows still sealed under retired keys: re-sealing in progress");
            }
            store.close().await;
            Ok(())
        }
        KeysCommand::Rotate { no_wait } => {
            let key = crate::storage::rotate_key(cfg, &keyring).await?;
            println!("data key {key} is now current");
            if no_wait {
                println!(
                    "the servers re-seal older rows in the background (`natterjack keys status`)"
                );
                return Ok(());
            }
            let store = crate::storage::open(cfg, keyring.clone()).await?;
            let resealing = store.resealing();
            let total = remaining(&resealing.key_usage().await.map_err(other)?);
            let mut progress = Progress {
                total,
                done: 0,
                terminal: std::io::stderr().is_terminal(),
                last_line: SystemClock.now(),
            };
            let pass = reseal_pass(
                resealing.as_ref(),
                cfg.encryption.reseal_batch,
                Duration::from_millis(cfg.encryption.reseal_pause_ms),
                |batch| progress.show(batch),
            )
            .await
            .map_err(other)?;
            if progress.terminal {
                eprintln!();
            }
            let usage = resealing.key_usage().await.map_err(other)?;
            store.close().await;
            print_usage(&usage);
            if pass.unreadable > 0 {
                return Err(StartError::Other(format!(
                    "{} rows did not open and stay under their old key (see the server log for which); \
                     the old key cannot be destroyed until they are repaired or deleted",
                    pass.unreadable
                )));
            }
            println!("every row is sealed under data key {key}");
            Ok(())
        }
        KeysCommand::Destroy { id } => {
            crate::storage::destroy_key(cfg, id).await?;
            println!("data key {id} destroyed");
            Ok(())
        }
        KeysCommand::Rewrap { new_key_file } => {
            let next = if new_key_file.exists() {
                crate::encryption_key::from_file(&new_key_file, &[])?
            } else {
                let next = KeyEncryptionKey::generate().map_err(other)?;
                crate::encryption_key::write_new(&new_key_file, &next)?;
                println!(
                    "generated a new key-encryption key at {}",
                    new_key_file.display()
                );
                next
            };
            if next.id() == keyring.kek().id() {
                return Err(StartError::Other(
                    "the new key-encryption key is the one in use".into(),
                ));
            }
            let count = crate::storage::rewrap_keys(cfg, &keyring, &next).await?;
            println!(
                "re-wrapped {count} data keys with key-encryption key {}: set encryption.key_file \
                 (or your key source) to it and restart every server; keep the old key until then",
                next.id()
            );
            Ok(())
        }
    }
}
