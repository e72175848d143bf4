use super::created;
use crate::AppState;
use crate::rest::error::ApiError;
use crate::rest::extract::{Access, JsonBody, NoQuery, StrictQuery};
use crate::rest::views::{MemberView, NewGrant, RevokeQuery};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use natterjack_core::domain::{Permissions, Username};

/// `GET /spaces/{id}/members` (needs `r`).
pub(crate) async fn list(
    _: NoQuery,
    State(state): State<AppState>,
    Access(access): Access,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let members = state.service.list_members(&access).await?;
    Ok(Json(members.into_iter().map(MemberView::from).collect()))
}

/// `POST /spaces/{id}/members` (any member; the escalation rule decides).
pub(crate) async fn grant(
    _: NoQuery,
    State(state): State<AppState>,
    Access(access): Access,
    JsonBody(body): JsonBody<NewGrant>,
) -> Result<Response, ApiError> {
    let target = Username::parse(&body.username)?;
    let permissions = Permissions::parse(&body.permissions)?;
    let member = state.service.grant(&access, &target, permissions).await?;
    let location = format!("/spaces/{}/members/{}", access.space(), member.username);
    Ok(created(&location, MemberView::from(member)))
}

/// `DELETE /spaces/{id}/members/{username}?permissions=` (any member; the escalation rule
/// decides). Without `permissions`, everything the member holds is revoked.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Access(access): Access,
    Path((_, username)): Path<(String, String)>,
    StrictQuery(query): StrictQuery<RevokeQuery>,
) -> Result<Response, ApiError> {
    let target = Username::parse(&username)?;
    let permissions = query
        .permissions
        .as_deref()
        .map(Permissions::parse)
        .transpose()?;
    state.service.revoke(&access, &target, permissions).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
