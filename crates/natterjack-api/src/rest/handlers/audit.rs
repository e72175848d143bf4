use crate::AppState;
use crate::rest::error::ApiError;
use crate::rest::extract::{Authenticated, StrictQuery};
use crate::rest::views::{AuditPageView, AuditQueryParams, AuditRecordView};
use axum::Json;
use axum::extract::State;
use natterjack_core::ServiceError;
use natterjack_core::audit::AuditQuery;
use natterjack_core::domain::{FieldError, Limit, MessageId, Timestamp, Username};

#[utoipa::path(operation_id = "listAudit", get, path = "/audit", tag = "audit", security(("basic" = []), ("bearer" = [])), params(("since" = Option<String>, Query, format = DateTime, description = "RFC 3339: records at or after"), ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339: records before"), ("principal" = Option<String>, Query, description = "Only this user", pattern = "^[a-zA-Z][a-zA-Z0-9]{1,29}$"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size"), ("after" = Option<i64>, Query, minimum = 1, description = "Cursor: records with a smaller id")), responses((status = 200, description = "Audit records, newest first (admins only)", body = AuditPageView)))]
/// `GET /audit?since=&until=&principal=&limit=&after=`: admins only, newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    StrictQuery(params): StrictQuery<AuditQueryParams>,
) -> Result<Json<AuditPageView>, ApiError> {
    let admin = caller.admin_access().ok_or(ServiceError::Forbidden(
        "only admins may read the audit log",
    ))?;
    let query = AuditQuery {
        decision: None,
        since: params
            .since
            .as_deref()
            .map(|s| Timestamp::parse("since", s))
            .transpose()?,
        until: params
            .until
            .as_deref()
            .map(|s| Timestamp::parse("until", s))
            .transpose()?,
        principal: params
            .principal
            .as_deref()
            .map(Username::parse)
            .transpose()
            .map_err(|e| FieldError::new("principal", e.reason()))?,
        after: params
            .after
            .as_deref()
            .map(MessageId::parse)
            .transpose()
            .map_err(|e| FieldError::new("after", e.reason()))?
            .map(MessageId::get),
        limit: params
            .limit
            .as_deref()
            .map(Limit::parse)
            .transpose()?
            .unwrap_or(Limit::DEFAULT),
    };
    let records = state.audit.page(admin, &query).await?;
    let next = (records.len() == usize::from(query.limit.get()))
        .then(|| records.last())
        .flatten()
        .map(|last| {
            // Keep the filters, so following `next` pages through the same selection.
            let mut link = format!("/audit?after={}&limit={}", last.id, query.limit.get());
            for (name, time) in [("since", query.since), ("until", query.until)] {
                if let Some(t) = time {
                    link.push_str(&format!("&{name}={}", t.to_rfc3339()));
                }
            }
            if let Some(p) = &query.principal {
                link.push_str(&format!("&principal={p}"));
            }
            link
        });
    Ok(Json(AuditPageView {
        records: records.into_iter().map(AuditRecordView::from).collect(),
        next,
    }))
}
