//! `[audit]`: the chain's secrets, SIEM export sinks, fail-closed mode and anomaly alerts.

use super::error::ConfigError;
use crate::syslog_facility::Facility;
use natterjack_core::audit::{AlertThresholds, CoalescePolicy};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The HMAC key of the chain (64 hex digits, 0600); default `<data_dir>/audit.key`,
    /// created on first start.
    pub key_file: Option<PathBuf>,
    /// The anchored chain head (0600); default `<data_dir>/audit.head`.
    pub head_file: Option<PathBuf>,
    /// Refuse state-changing requests (503 / `UNAVAILABLE`) while a sink's backlog exceeds
    /// `max_backlog`. Default false: a SIEM outage never blocks requests.
    pub fail_closed: bool,
    /// Records not yet confirmed by the slowest sink beyond which `fail_closed` refuses
    /// changes. Default 10000.
    pub max_backlog: u64,
    /// Rate-limit refusals of one key by one policy recorded one by one at the start of
    /// each window; the rest of the window is counted into one `summary` record. Default 5.
    pub refusals_recorded_individually: u32,
    /// The coalescing window, in seconds. Default 60.
    pub refusal_window_secs: u64,
    /// Free space, in MiB, on the data directory's file system below which state changes
    /// are refused (503) until 64 MiB more are free; 0 switches the guard off. Default 256.
    pub min_free_mb: u64,
    /// Seconds between two measurements of the free space. Default 5.
    pub disk_check_secs: u64,
    /// How often, in milliseconds, a server that does not hold a sink's export lease tries
    /// to take it: with several servers on one database only the holder exports, and this
    /// bounds how long the others take to notice that its lease was freed. Default 1000.
    pub export_lease_retry_ms: u64,
    /// Anomaly alerts.
    pub alerts: AlertsConfig,
    /// Where audit records are shipped; none by default.
    pub sinks: Vec<SinkConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            key_file: None,
            head_file: None,
            fail_closed: false,
            max_backlog: 10_000,
            refusals_recorded_individually: 5,
            refusal_window_secs: 60,
            min_free_mb: 256,
            disk_check_secs: 5,
            export_lease_retry_ms: 1000,
            alerts: AlertsConfig::default(),
            sinks: Vec::new(),
        }
    }
}

impl AuditConfig {
    /// How rate-limit refusals are coalesced.
    pub fn coalescing(&self) -> CoalescePolicy {
        CoalescePolicy {
            window: Duration::from_secs(self.refusal_window_secs),
            individually: self.refusals_recorded_individually,
        }
    }

    /// The free space below which changes are refused, in bytes.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb.saturating_mul(1024 * 1024)
    }
}

/// `[audit.alerts]`: refusals of one kind by one principal or client address within the
/// window that raise an `alert` record. 0 switches a kind off.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// The sliding window, in seconds. Default 60.
    pub window_secs: u64,
    /// 401 / `UNAUTHENTICATED` per subject. Default 20.
    pub unauthenticated: u32,
    /// 403 / `PERMISSION_DENIED` per subject. Default 20.
    pub forbidden: u32,
    /// 429 / `RESOURCE_EXHAUSTED` per subject. Default 100.
    pub rate_limited: u32,
    /// Distinct client addresses failing to log in as one account (a guessing attack
    /// spread over many addresses). Default 10.
    pub distributed_addresses: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let d = AlertThresholds::default();
        Self {
            window_secs: d.window.as_secs(),
            unauthenticated: d.unauthenticated,
            forbidden: d.forbidden,
            rate_limited: d.rate_limited,
            distributed_addresses: d.distributed_addresses,
        }
    }
}

impl AlertsConfig {
    /// The monitor's thresholds.
    pub fn thresholds(&self) -> AlertThresholds {
        AlertThresholds {
            window: Duration::from_secs(self.window_secs),
            unauthenticated: self.unauthenticated,
            forbidden: self.forbidden,
            rate_limited: self.rate_limited,
            distributed_addresses: self.distributed_addresses,
        }
    }
}

/// What a sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkKind {
    /// RFC 5424 over TCP, octet-counting framing (RFC 6587).
    SyslogTcp,
    /// RFC 5424 over TLS (RFC 5425), the collector verified against `ca_file`.
    SyslogTls,
    /// ECS JSON lines appended to `path`, rotated by size.
    JsonFile,
    /// ECS JSON lines on standard output (for a container's log driver).
    JsonStdout,
}

impl SinkKind {
    /// The spelling in the configuration file, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::SyslogTcp => "syslog-tcp",
            SinkKind::SyslogTls => "syslog-tls",
            SinkKind::JsonFile => "json-file",
            SinkKind::JsonStdout => "json-stdout",
        }
    }
}

/// `[[audit.sinks]]`: one destination. Settings that do not apply to its kind are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Names the sink's cursor in the database: letters, digits, `-`, `_`; up to 32.
    pub name: String,
    /// What it speaks.
    pub kind: SinkKind,
    /// Syslog: `host:port` of the collector.
    pub address: Option<String>,
    /// Syslog over TLS: the PEM CA that verifies the collector.
    pub ca_file: Option<PathBuf>,
    /// Syslog over TLS: the name in the collector's certificate; default the host of
    /// `address`.
    pub server_name: Option<String>,
    /// Syslog over TLS: the certificate (PEM chain) this server presents to a collector
    /// that authenticates its senders (RFC 5425 mutual authentication); with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Syslog over TLS: the private key (PEM) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Syslog: the facility. Default `authpriv`.
    pub facility: Option<Facility>,
    /// Syslog: APP-NAME. Default `natterjack`.
    pub app_name: Option<String>,
    /// Syslog: HOSTNAME. Default the machine's host name.
    pub hostname: Option<String>,
    /// Syslog: how long a connection must stay healthy after a record was written before it
    /// counts as delivered, in milliseconds (syslog has no acknowledgements). Default 2000.
    pub confirm_after_ms: Option<u64>,
    /// JSON file: where to append.
    pub path: Option<PathBuf>,
    /// JSON file: size in bytes beyond which the file is rotated. Default 100 MiB.
    pub max_bytes: Option<u64>,
    /// JSON file: rotated files kept (`path.1` newest). Default 5.
    pub keep: Option<u32>,
}

impl SinkConfig {
    fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err("name must be 1 to 32 letters, digits, '-' or '_'".into());
        }
        let syslog = matches!(self.kind, SinkKind::SyslogTcp | SinkKind::SyslogTls);
        let tls = self.kind == SinkKind::SyslogTls;
        let file = self.kind == SinkKind::JsonFile;
        let settings = [
            ("address", self.address.is_some(), syslog, syslog),
            ("ca_file", self.ca_file.is_some(), tls, tls),
            ("server_name", self.server_name.is_some(), tls, false),
            ("client_cert", self.client_cert.is_some(), tls, false),
            ("client_key", self.client_key.is_some(), tls, false),
            ("facility", self.facility.is_some(), syslog, false),
            ("app_name", self.app_name.is_some(), syslog, false),
            ("hostname", self.hostname.is_some(), syslog, false),
            (
                "confirm_after_ms",
                self.confirm_after_ms.is_some(),
                syslog,
                false,
            ),
            ("path", self.path.is_some(), file, file),
            ("max_bytes", self.max_bytes.is_some(), file, false),
            ("keep", self.keep.is_some(), file, false),
        ];
        for (key, given, applies, required) in settings {
            if given && !applies {
                return Err(format!(
                    "{key} does not apply to kind {}",
                    self.kind.as_str()
                ));
            }
            if required && !given {
                return Err(format!("{key} is required for kind {}", self.kind.as_str()));
            }
        }
        if let Some(address) = &self.address {
            let port = address.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) {
                return Err(format!("address must be host:port, not {address:?}"));
            }
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err("client_cert and client_key must be given together".into());
        }
        if self.max_bytes == Some(0) || self.keep == Some(0) {
            return Err("max_bytes and keep must be at least 1".into());
        }
        Ok(())
    }
}

impl AuditConfig {
    /// Refuses sinks that could not work, before anything starts.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("audit.alerts.window_secs", self.alerts.window_secs),
            ("audit.refusal_window_secs", self.refusal_window_secs),
            ("audit.disk_check_secs", self.disk_check_secs),
            ("audit.export_lease_retry_ms", self.export_lease_retry_ms),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("{key} must be at least 1")));
            }
        }
        let mut names = HashSet::new();
        for sink in &self.sinks {
            sink.check()
                .map_err(|why| ConfigError(format!("audit.sinks \"{}\": {why}", sink.name)))?;
            if !names.insert(sink.name.as_str()) {
                return Err(ConfigError(format!(
                    "audit.sinks: the name \"{}\" is used twice (each sink needs its own cursor)",
                    sink.name
                )));
            }
        }
        if self.fail_closed && self.sinks.is_empty() {
            return Err(ConfigError(
                "audit.fail_closed needs at least one [[audit.sinks]] to measure a backlog against"
                    .into(),
            ));
        }
        Ok(())
    }
}
