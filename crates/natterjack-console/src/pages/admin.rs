//! The admins' pages: the audit trail with its filters and chain status, the alerts, and a
//! chart of requests and refusals drawn as SVG on the server.

use super::render::{Chrome, render};
use super::spaces::principal;
use crate::Console;
use crate::adapter::SessionContext;
use crate::answer::ConsoleError;
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use natterjack_core::ServiceError;
use natterjack_core::audit::{AuditQuery, Decision, Phase, StoredAuditRecord};
use natterjack_core::domain::{FieldError, Limit, Timestamp, Username};
use natterjack_core::principal::{AdminAccess, Caller, Principal};
use serde::Deserialize;

/// An audit record as a table row (every field text, escaped by the template).
struct RecordRow {
    id: i64,
    time: String,
    phase: String,
    transport: String,
    client_ip: String,
    principal: String,
    auth_method: String,
    operation: String,
    target: String,
    status: String,
    decision: String,
    reason: String,
}

impl From<&StoredAuditRecord> for RecordRow {
    fn from(stored: &StoredAuditRecord) -> Self {
        let r = &stored.record;
        Self {
            id: stored.id,
            time: r.time.to_rfc3339(),
            phase: r.phase.as_str().to_owned(),
            transport: r.transport.as_str().to_owned(),
            client_ip: r.client_ip.clone(),
            principal: r.principal.clone().unwrap_or_default(),
            auth_method: r.auth_method.as_str().to_owned(),
            operation: r.operation.clone(),
            target: r.target.clone(),
            status: r.status.map(|s| s.to_string()).unwrap_or_default(),
            decision: r.decision.as_str().to_owned(),
            reason: r.reason.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Option<Chrome>,
    chain: String,
    since: String,
    until: String,
    principal: String,
    outcome: String,
    outcomes: Vec<String>,
    records: Vec<RecordRow>,
    next: Option<String>,
}

/// The audit page's filters, as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Filters {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    principal: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    after: String,
}

fn admin(principal: &Principal) -> Result<AdminAccess, ConsoleError> {
    principal
        .admin_access()
        .ok_or(ConsoleError::Service(ServiceError::Forbidden(
            "only admins may read the audit log",
        )))
}

fn optional<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Result<Option<T>, ConsoleError> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else {
        Ok(Some(parse(text)?))
    }
}

/// `GET /console/audit?since=&until=&principal=&outcome=&after=`.
pub(crate) async fn audit(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(session): Extension<SessionContext>,
    Query(filters): Query<Filters>,
) -> Result<Response, ConsoleError> {
    let principal = principal(&caller)?;
    let admin = admin(&principal)?;
    let decision = optional(&filters.outcome, |o| {
        Decision::parse(o)
            .filter(|d| *d != Decision::Pending)
            .ok_or(FieldError::new(
                "outcome",
                "allow, deny, reject, error or alert",
            ))
    })?;
    let query = AuditQuery {
        since: optional(&filters.since, |s| Timestamp::parse("since", s))?,
        until: optional(&filters.until, |s| Timestamp::parse("until", s))?,
        principal: optional(&filters.principal, |p| {
            Username::parse(p).map_err(|e| FieldError::new("principal", e.reason()))
        })?,
        decision,
        after: optional(&filters.after, |a| {
            a.parse::<i64>()
                .map_err(|_| FieldError::new("after", "a record id"))
        })?,
        limit: Limit::parse("50")?,
    };
    let records = console.app.audit.page(admin, &query).await?;
    let next = (records.len() == 50)
        .then(|| records.last())
        .flatten()
        .map(|last| {
            let mut link = format!("/console/audit?after={}", last.id);
            for (name, value) in [
                ("since", &filters.since),
                ("until", &filters.until),
                ("principal", &filters.principal),
                ("outcome", &filters.outcome),
            ] {
                if !value.is_empty() {
                    link.push('&');
                    link.push_str(name);
                    link.push('=');
                    link.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
                }
            }
            link
        });
    let chain = console.chain.status().await;
    Ok(render(&AuditPage {
        chrome: Chrome::of(&principal, &session),
        chain,
        since: filters.since,
        until: filters.until,
        principal: filters.principal,
        outcome: filters.outcome,
        outcomes: ["", "allow", "deny", "reject", "error", "alert"]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        records: records.iter().map(RecordRow::from).collect(),
        next,
    }))
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Option<Chrome>,
    records: Vec<RecordRow>,
}

/// `GET /console/alerts`: the newest 100 alert records.
pub(crate) async fn alerts(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(session): Extension<SessionContext>,
) -> Result<Response, ConsoleError> {
    let principal = principal(&caller)?;
    let admin = admin(&principal)?;
    let query = AuditQuery {
        since: None,
        until: None,
        principal: None,
        decision: Some(Decision::Alert),
        after: None,
        limit: Limit::parse("100")?,
    };
    let records = console.app.audit.page(admin, &query).await?;
    Ok(render(&AlertsPage {
        chrome: Chrome::of(&principal, &session),
        records: records.iter().map(RecordRow::from).collect(),
    }))
}

/// Minutes the activity chart covers.
const MINUTES: i64 = 60;

/// Records the chart reads at most (pages of 100, newest first).
const MAX_RECORDS: usize = 20_000;

/// One minute's bar pair.
struct Bar {
    x: i64,
    w: i64,
    allowed_y: i64,
    allowed_h: i64,
    refused_y: i64,
    refused_h: i64,
    allowed: u64,
    refused: u64,
    label: String,
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    chrome: Option<Chrome>,
    minutes: i64,
    total: u64,
    refused: u64,
    width: i64,
    height: i64,
    base: i64,
    peak: u64,
    bars: Vec<Bar>,
    first: String,
    last: String,
}

/// Counts per minute: (allowed, refused) of completed requests from `from` on.
fn per_minute(records: &[StoredAuditRecord], from: Timestamp) -> Vec<(u64, u64)> {
    let mut counts = vec![(0u64, 0u64); MINUTES as usize];
    for stored in records {
        let r = &stored.record;
        if !matches!(r.phase, Phase::Complete | Phase::Summary) {
            continue;
        }
        let minute = (r.time.micros() - from.micros()) / 60_000_000;
        let Some(slot) = usize::try_from(minute).ok().and_then(|m| counts.get_mut(m)) else {
            continue;
        };
        let weight = r.count.unwrap_or(1);
        match r.decision {
            Decision::Allow => slot.0 += weight,
            Decision::Deny | Decision::Reject | Decision::Error => slot.1 += weight,
            Decision::Pending | Decision::Alert => {}
        }
    }
    counts
}

/// `GET /console/activity`: the last hour from the audit trail.
pub(crate) async fn activity(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(session): Extension<SessionContext>,
) -> Result<Response, ConsoleError> {
    let principal = principal(&caller)?;
    let admin = admin(&principal)?;
    let now = console.app.clock.wall();
    let from = Timestamp::from_micros(now.micros() - MINUTES * 60_000_000);
    let mut records = Vec::new();
    let mut after = None;
    while records.len() < MAX_RECORDS {
        let query = AuditQuery {
            since: Some(from),
            until: None,
            principal: None,
            decision: None,
            after,
            limit: Limit::parse("100")?,
        };
        let page = console.app.audit.page(admin, &query).await?;
        let full = page.len() == 100;
        after = page.last().map(|r| r.id);
        records.extend(page);
        if !full {
            break;
        }
    }
    let counts = per_minute(&records, from);
    let peak = counts.iter().map(|(a, r)| a + r).max().unwrap_or(0).max(1);
    let (width, height, top, base, left) = (760i64, 260i64, 20i64, 230i64, 40i64);
    let w = (width - left) / MINUTES;
    let scale = |n: u64| {
        i64::try_from(n)
            .unwrap_or(i64::MAX)
            .saturating_mul(base - top)
            / i64::try_from(peak).unwrap_or(1)
    };
    let bars = counts
        .iter()
        .enumerate()
        .map(|(i, (allowed, refused))| {
            let x = left + i64::try_from(i).unwrap_or(0) * w;
            let (ah, rh) = (scale(*allowed), scale(*refused));
            let minute =
                Timestamp::from_micros(from.micros() + i64::try_from(i).unwrap_or(0) * 60_000_000);
            Bar {
                x,
                w: (w - 2).max(1),
                allowed_y: base - ah,
                allowed_h: ah,
                refused_y: base - ah - rh,
                refused_h: rh,
                allowed: *allowed,
                refused: *refused,
                label: minute.to_rfc3339(),
            }
        })
        .collect();
    Ok(render(&ActivityPage {
        chrome: Chrome::of(&principal, &session),
        minutes: MINUTES,
        total: counts.iter().map(|(a, r)| a + r).sum(),
        refused: counts.iter().map(|(_, r)| r).sum(),
        width,
        height,
        base,
        peak,
        bars,
        first: from.to_rfc3339(),
        last: now.to_rfc3339(),
    }))
}
