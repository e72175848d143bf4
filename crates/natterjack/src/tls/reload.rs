//! Certificate reload without a restart: `serve` re-reads the `[tls]` pair on SIGHUP, and
//! when the files' contents change (looked at every `tls.reload_check_secs`), so that a
//! renewed certificate is served without dropping a connection.
//!
//! A new pair must pass every check of [`PairBytes::check`]; then new handshakes on both
//! public listeners present it (logged `tls certificate reloaded` with its subject, serial
//! and expiry), while connections already open go on with the certificate they were
//! handshaken with. A refused pair is logged as an error naming the file and the reason, and
//! the old certificate stays. A pair caught half-replaced (the new certificate beside the old
//! key) is refused as a mismatch, and the look after the key arrives picks the pair up: each
//! distinct content of the files is tried once, so a broken pair is reported once, not at
//! every look. SIGHUP always tries. Both outcomes count in
//! `natterjack_tls_reloads_total{outcome="ok"|"refused"}`.

use super::pair::PairBytes;
use super::served::ServedCertificate;
use natterjack_core::clock::SharedClock;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// What made the reloader read the files, as the log line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// SIGHUP: the operator asked, so the pair is tried whatever it holds.
    Signal,
    /// The periodic look: the pair is tried only when its contents changed.
    Look,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Look => "files changed",
        }
    }
}

/// Starts reloading `served` on SIGHUP and whenever its files change, looking every
/// `every`; `clock` says when a new certificate has expired. SIGHUP is handled from the
/// moment this returns (before it, SIGHUP would end the process), so `serve` calls it
/// before it announces its listeners.
pub fn spawn(
    served: Arc<ServedCertificate>,
    every: Duration,
    clock: SharedClock,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut hangup = signal(SignalKind::hangup())?;
    // Both outcomes are shown from the start, at 0, so an alert on "refused" has a series.
    for outcome in ["ok", "refused"] {
        metrics::counter!("natterjack_tls_reloads_total", "outcome" => outcome).increment(0);
    }
    let mut seen = served.fingerprint();
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let trigger = tokio::select! {
                _ = tick.tick() => Trigger::Look,
                got = hangup.recv() => match got {
                    Some(()) => Trigger::Signal,
                    None => return,
                },
            };
            let files = served.files().clone();
            let Ok(bytes) = tokio::task::spawn_blocking(move || files.read()).await else {
                continue;
            };
            let fingerprint = bytes.fingerprint();
            if trigger == Trigger::Look && fingerprint == seen {
                continue;
            }
            seen = fingerprint;
            attempt(&served, &bytes, trigger, &clock);
        }
    }))
}

/// Checks `bytes` as the new pair of `served` and swaps it in, or refuses it; logs and
/// counts either way.
fn attempt(served: &ServedCertificate, bytes: &PairBytes, trigger: Trigger, clock: &SharedClock) {
    let now = clock.wall().to_date_time();
    match bytes.check(served.files(), now) {
        // Counted and swapped before the log line, so whoever reads the line sees both.
        Ok(pair) => {
            metrics::counter!("natterjack_tls_reloads_total", "outcome" => "ok").increment(1);
            let summary = pair.summary.clone();
            served.replace(pair, bytes.fingerprint());
            tracing::info!(
                trigger = trigger.name(),
                subject = %summary.subject,
                serial = %summary.serial,
                not_after = %summary.not_after,
                "tls certificate reloaded"
            );
        }
        Err(e) => {
            metrics::counter!("natterjack_tls_reloads_total", "outcome" => "refused").increment(1);
            let kept = served.summary();
            tracing::error!(
                trigger = trigger.name(),
                file = %e.file.display(),
                reason = %e.reason,
                kept_serial = %kept.serial,
                kept_not_after = %kept.not_after,
                "tls certificate reload refused: the old certificate stays in use"
            );
        }
    }
}
