//! Access control: each route declares the permission it needs; this is where it is enforced.

use crate::AppState;
use crate::rest::error::ApiError;
use axum::RequestPartsExt;
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use natterjack_core::domain::{Permissions, SpaceId};
use natterjack_core::principal::Caller;
use std::collections::HashMap;

/// Permission bits for the route table: read.
pub const R: u8 = 1;
/// Permission bits for the route table: write.
pub const W: u8 = 2;
/// Permission bits for the route table: delete (moderate).
pub const D: u8 = 4;
/// Any membership of the space (the escalation rule then decides grants and revocations).
pub const MEMBER: u8 = 0;

/// The guard for a space route needing permission bits `NEED` on the space named by the
/// `{id}` path segment. Unauthenticated callers get 401 before any ACL lookup; callers
/// without the permission get 403. On success the `SpaceAccess` capability is handed to the
/// handler as a request extension.
pub async fn require<const NEED: u8>(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let principal = match parts.extensions.get::<Caller>() {
        Some(Caller::User(p)) => p.clone(),
        _ => return ApiError::Unauthenticated.into_response(),
    };
    let space = match parts.extract::<Path<HashMap<String, String>>>().await {
        Ok(Path(params)) => match params.get("id").map(|id| SpaceId::parse(id)) {
            Some(Ok(space)) => space,
            Some(Err(e)) => {
                return ApiError::from(natterjack_core::ServiceError::Invalid(e)).into_response();
            }
            None => return ApiError::Internal.into_response(),
        },
        Err(_) => return ApiError::InvalidPath.into_response(),
    };
    let needed = Permissions::from_bits(i64::from(NEED)).unwrap_or(Permissions::ALL);
    match state.service.authorize(&principal, space, needed).await {
        Ok(access) => {
            if let Some(draft) = parts.extensions.get::<super::audit::AuditDraft>() {
                draft.allowed_because(format!("holds {} on space {space}", access.held()));
            }
            parts.extensions.insert(access);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
