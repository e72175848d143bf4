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

#[utoipa::path(operation_id = "listMembers", get, path = "/spaces/{id}/members", tag = "members", security(("basic" = []), ("bearer" = [])), params(("id" = i64, Path, description = "Space id", minimum = 1)), responses((status = 200, description = "Members and what they hold (needs r)", body = [MemberView])))]
/// `GET /spaces/{id}/members` (needs `r`).
pub(crate) async fn list(
    _: NoQuery,
    State(state): State<AppState>,
    Access(access): Access,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let members = state.service.list_members(&access).await?;
    Ok(Json(members.into_iter().map(MemberView::from).collect()))
}

#[utoipa::path(operation_id = "grantPermissions", post, path = "/spaces/{id}/members", tag = "members", security(("basic" = []), ("bearer" = [])), params(("id" = i64, Path, description = "Space id", minimum = 1)), request_body = NewGrant, responses((status = 201, description = "Granted, under the escalation rule", body = MemberView, headers(("location" = String, description = "The membership")))))]
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

#[utoipa::path(operation_id = "revokePermissions", delete, path = "/spaces/{id}/members/{username}", tag = "members", security(("basic" = []), ("bearer" = [])), params(("id" = i64, Path, description = "Space id", minimum = 1), ("username" = String, Path, description = "The member", pattern = "^[a-zA-Z][a-zA-Z0-9]{1,29}$"), ("permissions" = Option<String>, Query, description = "Which permissions to remove (all when absent): r, w and d, each at most once, in any order", pattern = "^(r|w|d|rw|wr|rd|dr|wd|dw|rwd|rdw|wrd|wdr|drw|dwr)$")), responses((status = 204, description = "Revoked, under the escalation rule")))]
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
