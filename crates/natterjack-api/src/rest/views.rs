//! Request and response bodies. Explicit types, so nothing reaches the wire by accident
//! (no password hash, no internal user id).

use natterjack_core::ports::{MemberRecord, MessageRecord, SpaceRecord};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The requested login name.
    #[schema(pattern = "^[a-zA-Z][a-zA-Z0-9]{1,29}$")]
    pub username: String,
    /// The password, secret from deserialisation on: 8 to 256 bytes of UTF-8, no control
    /// characters, and not too easy to guess (a zxcvbn score of at least 2, the username
    /// counted as a known word; refused with 400 otherwise, a rule no schema keyword states).
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub password: SecretString,
}

/// A created user.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    /// The login name.
    pub username: String,
}

/// `POST /spaces`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSpace {
    /// Display name: 1 to 255 characters after NFC normalisation, one line, no control or
    /// bidirectional-override characters.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069]*$"
    )]
    pub name: String,
    /// Must equal the caller when given.
    #[schema(pattern = "^[a-zA-Z][a-zA-Z0-9]{1,29}$")]
    pub owner: Option<String>,
}

/// A space.
#[derive(Serialize, ToSchema)]
pub struct SpaceView {
    /// Space id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The creator.
    pub owner: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Where to find it.
    pub uri: String,
}

impl From<SpaceRecord> for SpaceView {
    fn from(s: SpaceRecord) -> Self {
        Self {
            id: s.id.get(),
            uri: format!("/spaces/{}", s.id),
            name: s.name.as_str().to_owned(),
            owner: s.owner.as_str().to_owned(),
            created_at: s.created_at.to_rfc3339(),
        }
    }
}

/// `POST /spaces/{id}/messages`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// The text: 1 to 4096 characters after NFC normalisation; newline and tab allowed, other
    /// control characters and bidirectional overrides not.
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069]*$"
    )]
    pub message: String,
}

/// A message.
#[derive(Serialize, ToSchema)]
pub struct MessageView {
    /// Message id.
    pub id: i64,
    /// The space it belongs to.
    pub space_id: i64,
    /// Who posted it.
    pub author: String,
    /// The text.
    pub message: String,
    /// RFC 3339 time of posting.
    pub created_at: String,
    /// Where to find it.
    pub uri: String,
}

impl From<MessageRecord> for MessageView {
    fn from(m: MessageRecord) -> Self {
        Self {
            id: m.id.get(),
            space_id: m.space.get(),
            uri: format!("/spaces/{}/messages/{}", m.space, m.id),
            author: m.author.as_str().to_owned(),
            message: m.body.as_str().to_owned(),
            created_at: m.created_at.to_rfc3339(),
        }
    }
}

/// Query of `GET /spaces/{id}/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// RFC 3339: only messages posted at or after this time.
    pub since: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<String>,
    /// Cursor: only messages with a smaller id.
    pub after: Option<String>,
}

/// A page of messages, newest first.
#[derive(Serialize, ToSchema)]
pub struct MessagePageView {
    /// The messages.
    pub messages: Vec<MessageView>,
    /// The next page, when this one was full.
    pub next: Option<String>,
}

/// `POST /spaces/{id}/members`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// Who receives the permissions.
    #[schema(pattern = "^[a-zA-Z][a-zA-Z0-9]{1,29}$")]
    pub username: String,
    /// Which permissions: a non-empty combination of r, w and d, each at most once, in any
    /// order.
    #[schema(pattern = "^(r|w|d|rw|wr|rd|dr|wd|dw|rwd|rdw|wrd|wdr|drw|dwr)$")]
    pub permissions: String,
}

/// Query of `DELETE /spaces/{id}/members/{username}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    /// Which permissions to remove; all when absent.
    pub permissions: Option<String>,
}

/// A member and what they hold.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    /// The member.
    pub username: String,
    /// Canonical permissions, e.g. `rw`.
    pub permissions: String,
}

impl From<MemberRecord> for MemberView {
    fn from(m: MemberRecord) -> Self {
        Self {
            username: m.username.as_str().to_owned(),
            permissions: m.permissions.to_string(),
        }
    }
}

/// `GET /health`.
#[derive(Serialize, ToSchema)]
pub struct HealthView {
    /// `ok`: the server and its database answer.
    pub status: &'static str,
}

/// Query of `GET /audit`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQueryParams {
    /// RFC 3339: records made at or after this time.
    pub since: Option<String>,
    /// RFC 3339: records made before this time.
    pub until: Option<String>,
    /// Only this user's records.
    pub principal: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<String>,
    /// Cursor: records with a smaller id.
    pub after: Option<String>,
}

/// One audit record.
#[derive(Serialize, ToSchema)]
pub struct AuditRecordView {
    /// Position in the chain.
    pub id: i64,
    /// RFC 3339.
    pub time: String,
    /// The request id.
    pub request_id: String,
    /// `intent`, `complete`, `alert` (an anomaly the monitor flagged; its evidence is in
    /// `reason`), or `summary` (rate-limit refusals of one key within one window, beyond the
    /// first few recorded one by one; how many in `count`).
    #[schema(pattern = "^(intent|complete|alert|summary)$")]
    pub phase: &'static str,
    /// How the request arrived: `rest`, `grpc`, `console` (the browser console),
    /// `internal` (the operator's listeners), or `monitor` for an `alert`.
    #[schema(pattern = "^(rest|grpc|internal|monitor|console)$")]
    pub transport: &'static str,
    /// Client address.
    pub client_ip: String,
    /// Authenticated user, if any; in an `alert`, the account the refusals concerned.
    pub principal: Option<String>,
    /// How the caller authenticated: `none`, `basic` (HTTP Basic, checked locally or by a
    /// directory bind), `bearer` (an OpenID Connect access token), `mtls` (a gRPC client
    /// certificate alone), `local-operator` (the admin socket) or `session` (a browser
    /// session of the console).
    #[schema(pattern = "^(none|basic|bearer|mtls|local-operator|session)$")]
    pub auth_method: &'static str,
    /// The operation: method and route template for REST (`POST /spaces/{id}/messages`),
    /// the full method for gRPC (`/natterjack.v1.Spaces/PostMessage`), `alert KIND`.
    pub operation: String,
    /// The ids addressed: path parameters for REST, request fields for gRPC.
    pub target: String,
    /// The status answered: an HTTP status when `transport` is `rest`, `console` or `internal`, a gRPC
    /// code when it is `grpc`; none for intents and alerts.
    pub status: Option<u16>,
    /// `pending` (an intent), `allow`, `deny` (unauthenticated, forbidden, rate limited),
    /// `reject` (other client errors), `error` (server errors) or `alert`.
    #[schema(pattern = "^(pending|allow|deny|reject|error|alert)$")]
    pub decision: &'static str,
    /// Why.
    pub reason: Option<String>,
    /// Microseconds from the start of the request; for a summary, from its first refusal to
    /// its last.
    pub duration_us: i64,
    /// For a summary, the number of refusals it stands for; null otherwise.
    pub count: Option<u64>,
    /// The chain MAC, hex.
    pub mac: String,
}

impl From<natterjack_core::audit::StoredAuditRecord> for AuditRecordView {
    fn from(s: natterjack_core::audit::StoredAuditRecord) -> Self {
        let r = s.record;
        Self {
            id: s.id,
            time: r.time.to_rfc3339(),
            request_id: r.request_id,
            phase: r.phase.as_str(),
            transport: r.transport.as_str(),
            client_ip: r.client_ip,
            principal: r.principal,
            auth_method: r.auth_method.as_str(),
            operation: r.operation,
            target: r.target,
            status: r.status.map(|s| s.code()),
            decision: r.decision.as_str(),
            reason: r.reason,
            duration_us: r.duration_us,
            count: r.count,
            mac: s.mac.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// A page of audit records, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPageView {
    /// The records.
    pub records: Vec<AuditRecordView>,
    /// The next page, when this one was full.
    pub next: Option<String>,
}
