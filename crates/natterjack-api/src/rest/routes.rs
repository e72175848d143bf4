//! The route table. Each space route declares the permission it needs right here, and the
//! guard ([`crate::pipeline::acl::require`]) enforces it before the handler runs.

use super::handlers::{audit, health, members, messages, spaces, users};
use crate::AppState;
use crate::pipeline::acl::{D, MEMBER, R, W, require};
use crate::pipeline::rate_limit::REGISTRATION_PATH;
use axum::Router;
use axum::handler::Handler;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

/// The REST routes, to be wrapped by [`crate::pipeline::secure_pipeline`].
pub fn routes(state: &AppState) -> Router<AppState> {
    let needs_r = || from_fn_with_state(state.clone(), require::<R>);
    let needs_w = || from_fn_with_state(state.clone(), require::<W>);
    let needs_d = || from_fn_with_state(state.clone(), require::<D>);
    let needs_member = || from_fn_with_state(state.clone(), require::<MEMBER>);
    Router::new()
        .route("/health", get(health::health))
        .route("/openapi.json", get(health::openapi))
        .route(REGISTRATION_PATH, post(users::register))
        .route("/audit", get(audit::list))
        .route("/spaces", get(spaces::list).post(spaces::create))
        .route("/spaces/{id}", get(spaces::show.layer(needs_r())))
        .route(
            "/spaces/{id}/messages",
            get(messages::list.layer(needs_r())).post(messages::post.layer(needs_w())),
        )
        .route(
            "/spaces/{id}/messages/{msgId}",
            get(messages::show.layer(needs_r())).delete(messages::delete.layer(needs_d())),
        )
        .route(
            "/spaces/{id}/members",
            get(members::list.layer(needs_r())).post(members::grant.layer(needs_member())),
        )
        .route(
            "/spaces/{id}/members/{username}",
            axum::routing::delete(members::revoke.layer(needs_member())),
        )
}
