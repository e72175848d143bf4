//! Rows into domain records, shared by both backends: their queries return the same shapes,
//! and a stored value that no longer parses into its domain type means a corrupt row.

use crate::sealing::{Keyring, Place, SealError};
use natterjack_core::audit::{
    AuditRecord, AuthMethod, Decision, Phase, Status, StoredAuditRecord, Transport,
};
use natterjack_core::domain::{
    MessageId, MessageText, Permissions, SpaceId, SpaceName, Timestamp, UserId, Username,
};
use natterjack_core::ports::{MessageRecord, SpaceRecord, StoreError, UserRecord};

/// The columns of an [`AuditRow`], in order, as a literal so that statements stay
/// `&'static str` constants on both backends (`concat!`, never `format!`).
macro_rules! audit_columns {
    () => {
        "id, time, request_id, phase, transport, client_ip, principal, auth_method, \
         operation, target, status, decision, reason, duration_us, mac, count"
    };
}
pub(crate) use audit_columns;

/// The newest two audit records, newest first: what an exclusive append reads under the
/// write lock (the same text on both backends).
pub(crate) const NEWEST_TWO_AUDIT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_log ORDER BY id DESC LIMIT 2"
);

/// `id, sealed name, key id, owner's username, created_at`.
pub(crate) type SpaceRow = (i64, Vec<u8>, i64, String, i64);
/// `id, space_id, author's username, sealed body, key id, created_at`.
pub(crate) type MessageRow = (i64, i64, String, Vec<u8>, i64, i64);

/// The error for a sealed value that does not open at `place`.
pub(crate) fn unreadable(place: &Place, e: SealError) -> StoreError {
    StoreError::Unreadable(format!("{place}: {e}"))
}

/// A key id column as the keyring names keys (a value outside `u32` names no key).
pub(crate) fn key_id(column: i64) -> u32 {
    u32::try_from(column).unwrap_or(u32::MAX)
}

/// Opens the sealed value at `place`.
pub(crate) fn open(
    keyring: &Keyring,
    place: &Place,
    key: i64,
    bytes: &[u8],
) -> Result<String, StoreError> {
    keyring
        .open(place, key_id(key), bytes)
        .map_err(|e| unreadable(place, e))
}

/// Seals `text` for `place` under the current data key: the key id and the bytes to
/// store.
pub(crate) fn seal(
    keyring: &Keyring,
    place: &Place,
    text: &str,
) -> Result<(i64, Vec<u8>), StoreError> {
    let sealed = keyring
        .seal(place, text)
        .map_err(|e| StoreError::Internal(format!("cannot seal {place}: {e}")))?;
    Ok((i64::from(sealed.key), sealed.bytes))
}

/// A stored value re-sealed for rotation: the key id and bytes under the current key, or
/// `None` when it does not open (logged; the row keeps its old key and the pass goes on).
pub(crate) fn reseal(
    keyring: &Keyring,
    place: &Place,
    old_key: i64,
    bytes: &[u8],
) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    match open(keyring, place, old_key, bytes) {
        Ok(text) => seal(keyring, place, &text).map(Some),
        Err(e) => {
            tracing::error!(error = %e, "re-sealing skipped a row that does not open");
            Ok(None)
        }
    }
}

/// Whether any of `keys` is one the keyring does not hold: the store then reloads the
/// data keys once (another process may have rotated) before opening the rows.
pub(crate) fn needs_reload(keyring: &Keyring, keys: impl IntoIterator<Item = i64>) -> bool {
    keys.into_iter().any(|k| !keyring.holds(key_id(k)))
}

/// The error for a stored value that no longer parses.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt stored value: {what}"))
}

/// A user row (`admin` already decoded: SQLite stores 0/1, PostgreSQL a boolean).
pub(crate) fn user(
    id: i64,
    username: &str,
    password_hash: String,
    admin: bool,
) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId::from_i64(id).map_err(|_| corrupt("users.id"))?,
        username: Username::parse(username).map_err(|_| corrupt("users.username"))?,
        password_hash,
        admin,
    })
}

/// A space row, its name opened.
pub(crate) fn space(keyring: &Keyring, row: SpaceRow) -> Result<SpaceRecord, StoreError> {
    let name = open(keyring, &Place::space_name(row.0), row.2, &row.1)?;
    Ok(SpaceRecord {
        id: SpaceId::from_i64(row.0).map_err(|_| corrupt("spaces.id"))?,
        name: SpaceName::parse(&name).map_err(|_| corrupt("spaces.name"))?,
        owner: Username::parse(&row.3).map_err(|_| corrupt("users.username"))?,
        created_at: Timestamp::from_micros(row.4),
    })
}

/// A message row, its body opened.
pub(crate) fn message(keyring: &Keyring, row: MessageRow) -> Result<MessageRecord, StoreError> {
    let body = open(keyring, &Place::message_body(row.0, row.1), row.4, &row.3)?;
    Ok(MessageRecord {
        id: MessageId::from_i64(row.0).map_err(|_| corrupt("messages.id"))?,
        space: SpaceId::from_i64(row.1).map_err(|_| corrupt("messages.space_id"))?,
        author: Username::parse(&row.2).map_err(|_| corrupt("users.username"))?,
        body: MessageText::parse(&body).map_err(|_| corrupt("messages.body"))?,
        created_at: Timestamp::from_micros(row.5),
    })
}

/// A membership's permission bits; no row means no permissions.
pub(crate) fn permissions(bits: Option<i64>) -> Result<Permissions, StoreError> {
    match bits {
        None => Ok(Permissions::NONE),
        Some(b) => Permissions::from_bits(b).ok_or_else(|| corrupt("memberships.permissions")),
    }
}

/// An audit log row's columns as stored, before they are checked: both backends read
/// the same columns with the same SQL types into this, then [`AuditColumns::decode`] it.
pub(crate) struct AuditColumns {
    pub(crate) id: i64,
    pub(crate) time: i64,
    pub(crate) request_id: String,
    pub(crate) phase: String,
    pub(crate) transport: String,
    pub(crate) client_ip: String,
    pub(crate) principal: Option<String>,
    pub(crate) auth_method: String,
    pub(crate) operation: String,
    pub(crate) target: String,
    pub(crate) status: Option<i32>,
    pub(crate) decision: String,
    pub(crate) reason: Option<String>,
    pub(crate) duration_us: i64,
    pub(crate) mac: Vec<u8>,
    pub(crate) count: Option<i64>,
}

impl AuditColumns {
    /// The record, or the name of the column that does not hold a valid value.
    pub(crate) fn decode(self) -> Result<StoredAuditRecord, String> {
        let bad = |what: &str| format!("corrupt audit_log.{what}");
        let transport = Transport::parse(&self.transport).ok_or_else(|| bad("transport"))?;
        Ok(StoredAuditRecord {
            id: self.id,
            mac: self.mac.try_into().map_err(|_| bad("mac"))?,
            record: AuditRecord {
                time: Timestamp::from_micros(self.time),
                request_id: self.request_id,
                phase: Phase::parse(&self.phase).ok_or_else(|| bad("phase"))?,
                transport,
                client_ip: self.client_ip,
                principal: self.principal,
                auth_method: AuthMethod::parse(&self.auth_method)
                    .ok_or_else(|| bad("auth_method"))?,
                operation: self.operation,
                target: self.target,
                status: self
                    .status
                    .map(u16::try_from)
                    .transpose()
                    .map_err(|_| bad("status"))?
                    .map(|code| Status::of(transport, code)),
                decision: Decision::parse(&self.decision).ok_or_else(|| bad("decision"))?,
                reason: self.reason,
                duration_us: self.duration_us,
                count: self
                    .count
                    .map(u64::try_from)
                    .transpose()
                    .map_err(|_| bad("count"))?,
            },
        })
    }
}

/// An audit log row as PostgreSQL's driver decodes it.
pub(crate) struct AuditRow(pub(crate) StoredAuditRecord);

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for AuditRow {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        AuditColumns {
            id: row.try_get("id")?,
            time: row.try_get("time")?,
            request_id: row.try_get("request_id")?,
            phase: row.try_get("phase")?,
            transport: row.try_get("transport")?,
            client_ip: row.try_get("client_ip")?,
            principal: row.try_get("principal")?,
            auth_method: row.try_get("auth_method")?,
            operation: row.try_get("operation")?,
            target: row.try_get("target")?,
            status: row.try_get("status")?,
            decision: row.try_get("decision")?,
            reason: row.try_get("reason")?,
            duration_us: row.try_get("duration_us")?,
            mac: row.try_get("mac")?,
            count: row.try_get("count")?,
        }
        .decode()
        .map(AuditRow)
        .map_err(|e| sqlx::Error::Decode(e.into()))
    }
}

/// The records of decoded audit rows.
pub(crate) fn audit_records(rows: Vec<AuditRow>) -> Vec<StoredAuditRecord> {
    rows.into_iter().map(|r| r.0).collect()
}

/// A session row joined with its account: key, method, credential mark, admin then, opened,
/// last seen, address; then the account's id, name, password hash and admin now; then the
/// admin role its sign-on granted.
pub(crate) type SessionRow = (
    Vec<u8>,
    String,
    Vec<u8>,
    bool,
    i64,
    i64,
    String,
    i64,
    String,
    String,
    bool,
    bool,
);

/// The columns of a [`SessionRow`], in order, from `console_sessions s JOIN users u`.
pub(crate) const SESSION_COLUMNS: &str = "s.id_hash, s.method, s.credential_mark, s.is_admin, \
     s.created_at, s.last_seen_at, s.client_ip, u.id, u.username, u.password_hash, u.is_admin, \
     s.granted_admin";

/// A stored session with its account.
pub(crate) fn session(
    row: SessionRow,
) -> Result<natterjack_core::session::StoredSession, StoreError> {
    use natterjack_core::domain::Timestamp;
    Ok(natterjack_core::session::StoredSession {
        key: natterjack_core::session::SessionKey::from_bytes(&row.0)
            .ok_or_else(|| corrupt("console_sessions.id_hash"))?,
        method: row.1,
        credential_mark: row.2,
        admin: row.3,
        granted_admin: row.11,
        created_at: Timestamp::from_micros(row.4),
        last_seen_at: Timestamp::from_micros(row.5),
        client_ip: row.6,
        user: user(row.7, &row.8, row.9, row.10)?,
    })
}
