//! SIEM export: every audit record, in order, at least once, to each configured sink.
//!
//! The audit table is the outbox. Each sink has a cursor in the database (the id of the
//! newest record it confirmed) and its own task, so a slow or absent collector holds back
//! only itself, and a restart resumes where the sink left off. Records leave as RFC 5424
//! syslog with octet-counting framing (over TCP or TLS) or as ECS JSON lines, always with
//! their id and chain MAC so that the SIEM side can check that none is missing. When several
//! servers share the database, each sink's lease lets one of them export it (the others
//! wait, and take over when the holder dies), so the collector gets each record once.
//!
//! - [`format`]: the wire formats.
//! - `sink`: the destinations and their I/O.
//! - `exporter`: the per-sink loop: take the lease; read, send, confirm, advance the cursor.

mod exporter;
pub mod format;
mod sink;

use crate::config::{SinkConfig, SinkKind};
use natterjack_core::audit::{AuditLog, ExportGate, ExportLeases};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts one export task per sink; each exports while it holds its sink's lease from
/// `leases`, trying every `lease_retry` while another server does, and they stop (giving
/// their leases up) when `shutdown` turns true. Fails before starting anything if a sink
/// cannot be built (an unreadable CA file, say).
pub fn start(
    sinks: &[SinkConfig],
    log: &AuditLog,
    gate: Arc<ExportGate>,
    leases: &dyn ExportLeases,
    lease_retry: std::time::Duration,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut tasks = Vec::with_capacity(sinks.len());
    for (index, cfg) in sinks.iter().enumerate() {
        let sink =
            sink::Sink::new(cfg).map_err(|e| format!("audit.sinks \"{}\": {e}", cfg.name))?;
        let encoder = match cfg.kind {
            SinkKind::SyslogTcp | SinkKind::SyslogTls => {
                exporter::Encoder::Syslog(format::SyslogHeader::new(
                    cfg.facility.unwrap_or_default(),
                    &cfg.hostname.clone().unwrap_or_else(format::local_hostname),
                    cfg.app_name.as_deref().unwrap_or("natterjack"),
                    &std::process::id().to_string(),
                ))
            }
            SinkKind::JsonFile | SinkKind::JsonStdout => exporter::Encoder::Ecs,
        };
        let task = exporter::SinkTask {
            index,
            name: cfg.name.clone(),
            sink,
            encoder,
            confirm_after: std::time::Duration::from_millis(cfg.confirm_after_ms.unwrap_or(2000)),
            store: log.store(),
            commits: log.commits(),
            gate: gate.clone(),
            lease: leases.lease(&cfg.name),
            lease_retry,
        };
        tasks.push(tokio::spawn(task.run(shutdown.clone())));
    }
    Ok(tasks)
}
