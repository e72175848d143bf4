//! The route table. What each route needs is declared with its operation
//! ([`super::operations`]) and enforced by the pipeline before the handler runs.

use super::handlers::{audit, health, members, messages, spaces, users};
use crate::AppState;
use crate::pipeline::rate_limit::REGISTRATION_PATH;
use axum::Router;
use axum::routing::{get, post};

/// The REST routes, to be wrapped by [`super::secure::secure_pipeline`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/openapi.json", get(super::openapi::serve))
        .route(REGISTRATION_PATH, post(users::register))
        .route("/audit", get(audit::list))
        .route("/spaces", get(spaces::list).post(spaces::create))
        .route("/spaces/{id}", get(spaces::show))
        .route(
            "/spaces/{id}/messages",
            get(messages::list).post(messages::post),
        )
        .route(
            "/spaces/{id}/messages/{msgId}",
            get(messages::show).delete(messages::delete),
        )
        .route(
            "/spaces/{id}/members",
            get(members::list).post(members::grant),
        )
        .route(
            "/spaces/{id}/members/{username}",
            axum::routing::delete(members::revoke),
        )
}
