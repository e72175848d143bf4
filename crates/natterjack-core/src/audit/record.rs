//! One audit record and its canonical form.

use super::vocabulary::{AuthMethod, Decision, Status, Transport};
use crate::domain::Timestamp;

/// Which moment of a request a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Written durably *before* a state-changing operation runs: no change becomes visible
    /// without a record of its attempt.
    Intent,
    /// Written when the request is answered, with its status and the decision; every
    /// request, allowed or refused, has exactly one.
    Complete,
    /// An anomaly the monitor flagged (a burst of refusals from one principal or address),
    /// with its evidence: recorded like any request, so it reaches the SIEM the same way.
    Alert,
    /// Refusals of one key by one rate-limit policy within one window, beyond the first few
    /// recorded one by one, counted exactly in one record (`count`), so that a flood cannot
    /// fill the disk with identical rows.
    Summary,
}

impl Phase {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Intent => "intent",
            Phase::Complete => "complete",
            Phase::Alert => "alert",
            Phase::Summary => "summary",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "intent" => Some(Phase::Intent),
            "complete" => Some(Phase::Complete),
            "alert" => Some(Phase::Alert),
            "summary" => Some(Phase::Summary),
            _ => None,
        }
    }
}

/// What is known about one request. No field ever holds a secret: no `Authorization`
/// header, no password, no message text. Free-text fields are truncated and stripped of
/// control characters when built, so a record cannot forge log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When the record was made.
    pub time: Timestamp,
    /// The request id, as in the response's `x-request-id` and the server log.
    pub request_id: String,
    /// Intent or completion.
    pub phase: Phase,
    /// How the request arrived (`rest`, `grpc`, `internal`), or `monitor` for alerts.
    pub transport: Transport,
    /// The client address the pipeline attributed the request to.
    pub client_ip: String,
    /// The authenticated user, if any.
    pub principal: Option<String>,
    /// How the caller authenticated: `none`, `basic`, `mtls` or `local-operator` (the
    /// credentials themselves are never recorded).
    pub auth_method: AuthMethod,
    /// The operation as its transport names it: method and route template for REST
    /// (`POST /spaces/{id}/messages`), the full method for gRPC
    /// (`/natterjack.v1.Spaces/PostMessage`), `alert KIND` for alerts.
    pub operation: String,
    /// The ids it addresses: path parameters for REST (`id=3 msgId=7`), request fields for
    /// gRPC (`space_id=3 message_id=7`).
    pub target: String,
    /// The status answered: an HTTP status for REST and the internal listener, a gRPC code
    /// for gRPC; none for intents and alerts.
    pub status: Option<Status>,
    /// `pending` (intent), `allow`, `deny` (unauthenticated, forbidden, rate limited),
    /// `reject` (other client errors), `error` (server errors), or `alert`.
    pub decision: Decision,
    /// Why, when the pipeline or the service said so.
    pub reason: Option<String>,
    /// Time from the start of the request, in microseconds; for a summary, from its first
    /// refusal to its last.
    pub duration_us: i64,
    /// How many refusals a summary stands for; `None` for every other record.
    pub count: Option<u64>,
}

/// A record as stored: its position in the chain and its MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditRecord {
    /// Consecutive from 1.
    pub id: i64,
    /// The record.
    pub record: AuditRecord,
    /// HMAC-SHA-256 over the previous MAC and this record's canonical form.
    pub mac: [u8; 32],
}

/// An anomaly to record as an `alert` record: the same shape for every kind, whoever
/// raises it (the anomaly monitor, the disk-space probe).
#[derive(Debug, Clone)]
pub struct Alert<'a> {
    /// The kind, e.g. `distributed_guessing`; the record's operation reads `alert KIND`.
    pub kind: &'a str,
    /// What it concerns, e.g. `principal=alice`.
    pub target: &'a str,
    /// The evidence, in words.
    pub evidence: &'a str,
    /// When it was raised.
    pub time: Timestamp,
    /// The request that raised it.
    pub request_id: String,
    /// The client address the evidence ends with, if any.
    pub client_ip: String,
    /// The account it concerns, if any.
    pub principal: Option<String>,
    /// How long the evidence spans, in microseconds.
    pub duration_us: i64,
}

impl From<Alert<'_>> for AuditRecord {
    fn from(a: Alert<'_>) -> Self {
        AuditRecord {
            time: a.time,
            request_id: a.request_id,
            phase: Phase::Alert,
            transport: Transport::Monitor,
            client_ip: a.client_ip,
            principal: a.principal,
            auth_method: AuthMethod::None,
            operation: format!("alert {}", a.kind),
            target: clean(a.target, 200),
            status: None,
            decision: Decision::Alert,
            reason: Some(clean(a.evidence, 400)),
            duration_us: a.duration_us,
            count: None,
        }
    }
}

/// Makes untrusted text safe to record: control characters become `?`, at most `max`
/// characters are kept.
pub fn clean(text: &str, max: usize) -> String {
    // Nearly everything recorded (route templates, ids, addresses, names) is short printable
    // ASCII, which needs no change: copied whole rather than character by character, on
    // every request.
    if text.len() <= max && text.bytes().all(|b| b.is_ascii() && !b.is_ascii_control()) {
        return text.to_owned();
    }
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl AuditRecord {
    /// The canonical bytes the chain MAC covers: every field in a fixed order, each
    /// length-prefixed, preceded by the record id so that moving a record is detectable;
    /// a summary's count last.
    pub fn canonical(&self, id: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        field(&id.to_be_bytes());
        field(&self.time.micros().to_be_bytes());
        field(self.request_id.as_bytes());
        field(self.phase.as_str().as_bytes());
        field(self.transport.as_str().as_bytes());
        field(self.client_ip.as_bytes());
        field(self.principal.as_deref().unwrap_or("\u{0}none").as_bytes());
        field(self.auth_method.as_str().as_bytes());
        field(self.operation.as_bytes());
        field(self.target.as_bytes());
        field(
            &self
                .status
                .map_or(-1i32, |s| i32::from(s.code()))
                .to_be_bytes(),
        );
        field(self.decision.as_str().as_bytes());
        field(self.reason.as_deref().unwrap_or("\u{0}none").as_bytes());
        field(&self.duration_us.to_be_bytes());
        // Only summaries carry a count, so every other record keeps the canonical form it
        // had before summaries existed, and older chains still verify.
        if let Some(count) = self.count {
            field(&count.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_keeps_printable_text_and_replaces_every_control_character() {
        assert_eq!(clean("GET /spaces/{id}", 200), "GET /spaces/{id}");
        assert_eq!(clean("a\nb\rc\td\u{7f}e", 200), "a?b?c?d?e");
        assert_eq!(clean("x\u{85}y\u{9b}z", 200), "x?y?z");
        assert_eq!(clean("grüße 🐸", 200), "grüße 🐸");
    }

    #[test]
    fn clean_keeps_at_most_max_characters_whatever_their_width() {
        assert_eq!(clean("abcdef", 4), "abcd");
        assert_eq!(clean("abcd", 4), "abcd");
        assert_eq!(clean("ééééé", 4), "éééé");
        assert_eq!(clean("a\u{1b}[31mred", 4), "a?[3");
    }
}
