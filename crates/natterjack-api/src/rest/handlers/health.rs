use crate::AppState;
use crate::rest::error::ApiError;
use crate::rest::extract::NoQuery;
use crate::rest::views::HealthView;
use axum::Json;
use axum::extract::State;

#[utoipa::path(operation_id = "getHealth", get, path = "/health", tag = "health", security(()), responses((status = 200, description = "Ready: the server answers and so does its database", body = HealthView)))]
/// Readiness, without authentication and without anything internal (no version, no host):
/// 503 while the database does not answer, or once shutdown has begun (the drain), so a
/// load balancer sends requests elsewhere.
pub(crate) async fn health(
    State(state): State<AppState>,
    _: NoQuery,
) -> Result<Json<HealthView>, ApiError> {
    if !state.lifecycle.is_serving() {
        return Err(ApiError::ShuttingDown);
    }
    state
        .service
        .ready()
        .await
        .map_err(|_| ApiError::NotReady)?;
    Ok(Json(HealthView { status: "ok" }))
}
