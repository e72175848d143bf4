//! The server's background re-sealing: it re-reads the data keys every
//! `encryption.key_poll_secs` (so a key made current by `natterjack keys rotate` is used by
//! this node's writes from then on), and when the current key is one it has not finished a
//! pass for — after a rotation, or at start after a crash in the middle of one — it
//! re-seals every older row in bounded batches while the server serves traffic.

use natterjack_storage::rotation::{Resealing, reseal_pass};
use natterjack_storage::sealing::Keyring;
use std::sync::Arc;
use std::time::Duration;

/// How the task runs, from `[encryption]`.
#[derive(Debug, Clone, Copy)]
pub struct ResealerSettings {
    /// Rows per table per batch.
    pub batch: u32,
    /// Pause between batches.
    pub pause: Duration,
    /// How often the data keys are re-read.
    pub poll: Duration,
}

/// Runs until the task is aborted (at shutdown). Errors are logged and retried at the next
/// poll: re-sealing is an optimisation of key hygiene, never a reason to stop serving.
pub async fn run(store: Arc<dyn Resealing>, keyring: Arc<Keyring>, settings: ResealerSettings) {
    let mut finished_for: Option<u32> = None;
    loop {
        if let Err(e) = store.reload_keys().await {
            tracing::warn!(error = %e, "cannot re-read the data keys; retrying");
        }
        let current = keyring.current();
        if current.is_some() && current != finished_for {
            match reseal_pass(store.as_ref(), settings.batch, settings.pause, |_| {}).await {
                Ok(pass) => {
                    if pass.resealed > 0 || pass.unreadable > 0 {
                        tracing::info!(
                            key = current,
                            resealed = pass.resealed,
                            unreadable = pass.unreadable,
                            "re-sealing pass finished"
                        );
                    }
                    finished_for = current;
                }
                Err(e) => tracing::warn!(error = %e, "re-sealing pass interrupted; retrying"),
            }
        }
        tokio::time::sleep(settings.poll).await;
    }
}
