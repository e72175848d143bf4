//! The syslog facility an operator picks for exported audit messages. It is named by the
//! configuration (`[[audit.sinks]]` `facility`) and encoded by the export format, so it lives
//! in neither: with it here, `config` and `export` do not import each other.

/// The RFC 5424 §6.2.1 facility, chosen by the operator so the SIEM can route audit
/// messages; the numeric code goes into PRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
#[allow(missing_docs)] // The variant names are the RFC 5424 keywords.
pub enum Facility {
    Kern = 0,
    User = 1,
    Mail = 2,
    Daemon = 3,
    Auth = 4,
    Syslog = 5,
    Lpr = 6,
    News = 7,
    Uucp = 8,
    Cron = 9,
    /// The default: security/authorization messages that must not reach world-readable logs.
    #[default]
    Authpriv = 10,
    Ftp = 11,
    Ntp = 12,
    /// "log audit".
    Audit = 13,
    /// "log alert".
    Alert = 14,
    Clock = 15,
    Local0 = 16,
    Local1 = 17,
    Local2 = 18,
    Local3 = 19,
    Local4 = 20,
    Local5 = 21,
    Local6 = 22,
    Local7 = 23,
}

impl Facility {
    /// The numeric code, because PRI is `facility * 8 + severity`.
    pub fn code(self) -> u8 {
        self as u8
    }
}
