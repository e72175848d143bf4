//! The disk-space probe behind `audit.min_free_mb`: measures the data directory's file
//! system on a timer and feeds the [`SpaceGate`], which pauses state changes while space is
//! short. Each flip is logged, recorded as an `alert` (so it reaches the SIEM) and shown in
//! the `natterjack_disk_low` and `natterjack_disk_free_bytes` gauges.

use natterjack_core::audit::record::Alert;
use natterjack_core::audit::space_gate::Flip;
use natterjack_core::audit::{AuditLog, SpaceGate};
use natterjack_core::clock::{Clock, SystemClock};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Measures `dir` now and then every `every`, for as long as the process runs.
pub fn spawn(gate: Arc<SpaceGate>, audit: Arc<AuditLog>, dir: PathBuf, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let measured = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || free_bytes(&dir)).await
            };
            let free = match measured {
                Ok(Ok(free)) => free,
                Ok(Err(e)) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot measure free disk space");
                    continue;
                }
                Err(_) => continue,
            };
            metrics::gauge!("natterjack_disk_free_bytes").set(free as f64);
            let flip = gate.observe(free);
            metrics::gauge!("natterjack_disk_low").set(if gate.is_low() { 1.0 } else { 0.0 });
            if let Some(flip) = flip {
                report(&audit, &gate, &dir, flip).await;
            }
        }
    });
}

async fn report(audit: &AuditLog, gate: &SpaceGate, dir: &Path, flip: Flip) {
    let (free, threshold) = (gate.free() / MIB, gate.threshold() / MIB);
    let (kind, evidence) = match flip {
        Flip::Low => {
            tracing::error!(
                free_mb = free,
                min_free_mb = threshold,
                "disk space low: state changes are refused until space is freed"
            );
            (
                "disk_low",
                format!(
                    "{free} MiB free, below audit.min_free_mb ({threshold} MiB): state changes are refused"
                ),
            )
        }
        Flip::Recovered => {
            tracing::warn!(free_mb = free, "disk space recovered: state changes resume");
            (
                "disk_recovered",
                format!("{free} MiB free again: state changes resume"),
            )
        }
    };
    metrics::counter!("natterjack_alerts_total", "kind" => kind).increment(1);
    let target = format!("path={}", dir.display());
    let record = Alert {
        time: SystemClock.wall(),
        kind,
        target: &target,
        evidence: &evidence,
        request_id: natterjack_api::pipeline::request_id::fresh(),
        client_ip: String::new(),
        principal: None,
        duration_us: 0,
    };
    if let Err(e) = audit.submit(record.into()).await {
        tracing::error!(error = %e, "could not record the disk-space alert");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_space_of_a_real_directory_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
