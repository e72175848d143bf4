use super::created;
use crate::AppState;
use crate::rest::error::ApiError;
use crate::rest::extract::{AnyCaller, JsonBody, NoQuery};
use crate::rest::views::{NewUser, UserView};
use axum::extract::State;
use axum::response::Response;
use natterjack_core::domain::Username;

#[utoipa::path(operation_id = "registerUser", post, path = "/users", tag = "users", security((), ("basic" = []), ("bearer" = [])), request_body = NewUser, responses((status = 201, description = "Account created", body = UserView, headers(("location" = String, description = "The new account")))))]
/// `POST /users`: self-registration (or account creation by an admin).
pub(crate) async fn register(
    _: NoQuery,
    State(state): State<AppState>,
    AnyCaller(caller): AnyCaller,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    let username = Username::parse(&body.username)?;
    let admin = caller.principal().and_then(|p| p.admin_access());
    let created_name = state
        .service
        .register(&caller, admin, username, body.password)
        .await?;
    let view = UserView {
        username: created_name.as_str().to_owned(),
    };
    Ok(created(&format!("/users/{}", created_name), view))
}
