use super::created;
use crate::AppState;
use crate::rest::error::ApiError;
use crate::rest::extract::{Access, Authenticated, JsonBody, NoQuery};
use crate::rest::views::{NewSpace, SpaceView};
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use natterjack_core::domain::{SpaceName, Username};

#[utoipa::path(operation_id = "createSpace", post, path = "/spaces", tag = "spaces", security(("basic" = []), ("bearer" = [])), request_body = NewSpace, responses((status = 201, description = "Space created; the caller holds rwd", body = SpaceView, headers(("location" = String, description = "The new space")))))]
/// `POST /spaces`: the caller creates a space and receives `rwd` on it.
pub(crate) async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
    JsonBody(body): JsonBody<NewSpace>,
) -> Result<Response, ApiError> {
    let name = SpaceName::parse(&body.name)?;
    let owner = body
        .owner
        .as_deref()
        .map(Username::parse)
        .transpose()
        .map_err(|e| {
            ApiError::from(natterjack_core::domain::FieldError::new(
                "owner",
                e.reason(),
            ))
        })?;
    let space = state.service.create_space(&caller, name, owner).await?;
    let view = SpaceView::from(space);
    let location = view.uri.clone();
    Ok(created(&location, view))
}

#[utoipa::path(operation_id = "listSpaces", get, path = "/spaces", tag = "spaces", security(("basic" = []), ("bearer" = [])), responses((status = 200, description = "Spaces where the caller holds any permission", body = [SpaceView])))]
/// `GET /spaces`: the spaces where the caller holds any permission.
pub(crate) async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    _: NoQuery,
) -> Result<Json<Vec<SpaceView>>, ApiError> {
    let spaces = state.service.list_spaces(&caller).await?;
    Ok(Json(spaces.into_iter().map(SpaceView::from).collect()))
}

#[utoipa::path(operation_id = "getSpace", get, path = "/spaces/{id}", tag = "spaces", security(("basic" = []), ("bearer" = [])), params(("id" = i64, Path, description = "Space id", minimum = 1)), responses((status = 200, description = "The space (needs r)", body = SpaceView)))]
/// `GET /spaces/{id}` (needs `r`).
pub(crate) async fn show(
    _: NoQuery,
    State(state): State<AppState>,
    Access(access): Access,
) -> Result<Json<SpaceView>, ApiError> {
    Ok(Json(state.service.get_space(&access).await?.into()))
}
