use crate::rest::extract::NoQuery;
use crate::rest::views::HealthView;
use axum::Json;

/// Liveness, without authentication and without anything internal (no version, no host).
pub(crate) async fn health(_: NoQuery) -> Json<HealthView> {
    Json(HealthView { status: "ok" })
}
