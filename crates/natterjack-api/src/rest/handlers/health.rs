use crate::rest::extract::NoQuery;
use crate::rest::views::HealthView;
use axum::Json;

#[utoipa::path(operation_id = "getHealth", get, path = "/health", tag = "health", security(()), responses((status = 200, description = "The server answers", body = HealthView)))]
/// Liveness, without authentication and without anything internal (no version, no host).
pub(crate) async fn health(_: NoQuery) -> Json<HealthView> {
    Json(HealthView { status: "ok" })
}

/// The OpenAPI 3.1 document of this API, without authentication.
pub(crate) async fn openapi(_: NoQuery) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        crate::rest::openapi::json(),
    )
        .into_response()
}
