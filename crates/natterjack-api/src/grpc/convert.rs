//! Proto ⇄ domain, in one place: requests parse into domain types (refusing what REST
//! refuses), records become proto messages.

use super::proto;
use natterjack_core::audit::StoredAuditRecord;
use natterjack_core::domain::{FieldError, Limit, MessageId, Permissions, SpaceId, Timestamp};
use natterjack_core::ports::{MemberRecord, MessagePage, MessageRecord, SpaceRecord};

/// A space id field.
pub fn space_id(raw: i64) -> Result<SpaceId, FieldError> {
    SpaceId::from_i64(raw).map_err(|_| FieldError::new("space_id", "must be a positive integer"))
}

/// A message id field.
pub fn message_id(raw: i64) -> Result<MessageId, FieldError> {
    MessageId::from_i64(raw)
        .map_err(|_| FieldError::new("message_id", "must be a positive integer"))
}

/// An optional string field: proto3 has no absence, so empty means "not given".
pub fn optional(raw: &str) -> Option<&str> {
    (!raw.is_empty()).then_some(raw)
}

/// A `limit` field: 0 means the default, otherwise 1 to 100.
pub fn limit(raw: i32) -> Result<Limit, FieldError> {
    if raw == 0 {
        Ok(Limit::DEFAULT)
    } else {
        Limit::parse(&raw.to_string())
    }
}

/// An optional RFC 3339 time field.
pub fn time(field: &'static str, raw: &str) -> Result<Option<Timestamp>, FieldError> {
    optional(raw)
        .map(|s| Timestamp::parse(field, s))
        .transpose()
}

/// The page of `ListMessages`.
pub fn message_page(req: &proto::ListMessagesRequest) -> Result<MessagePage, FieldError> {
    Ok(MessagePage {
        since: time("since", &req.since)?,
        after: match req.after {
            0 => None,
            raw => Some(
                MessageId::from_i64(raw)
                    .map_err(|_| FieldError::new("after", "must be a positive integer"))?,
            ),
        },
        limit: limit(req.limit)?,
    })
}

/// A permissions field, e.g. `rw`.
pub fn permissions(raw: &str) -> Result<Permissions, FieldError> {
    Permissions::parse(raw)
}

/// A space for the wire.
pub fn space(s: SpaceRecord) -> proto::Space {
    proto::Space {
        id: s.id.get(),
        name: s.name.as_str().to_owned(),
        owner: s.owner.as_str().to_owned(),
        created_at: s.created_at.to_rfc3339(),
    }
}

/// A message for the wire.
pub fn message(m: MessageRecord) -> proto::Message {
    proto::Message {
        id: m.id.get(),
        space_id: m.space.get(),
        author: m.author.as_str().to_owned(),
        message: m.body.as_str().to_owned(),
        created_at: m.created_at.to_rfc3339(),
    }
}

/// A member for the wire.
pub fn member(m: MemberRecord) -> proto::Member {
    proto::Member {
        username: m.username.as_str().to_owned(),
        permissions: m.permissions.to_string(),
    }
}

/// An audit record for the wire (the MAC stays in the database).
pub fn audit_record(s: StoredAuditRecord) -> proto::AuditRecord {
    let r = s.record;
    proto::AuditRecord {
        id: s.id,
        time: r.time.to_rfc3339(),
        request_id: r.request_id,
        phase: r.phase.as_str().to_owned(),
        transport: r.transport.as_str().to_owned(),
        client_ip: r.client_ip,
        principal: r.principal.unwrap_or_default(),
        auth_method: r.auth_method.as_str().to_owned(),
        operation: r.operation,
        target: r.target,
        status: r.status.map_or(-1, |s| i32::from(s.code())),
        decision: r.decision.as_str().to_owned(),
        reason: r.reason.unwrap_or_default(),
        duration_us: r.duration_us,
        count: r.count.unwrap_or(0),
    }
}
