//! The console's route table. What each route needs is declared with its operation
//! ([`crate::operations`]) and enforced by the adapter's pipeline before a page runs.

use crate::Console;
use crate::adapter::secured;
use crate::answer::ConsoleError;
use crate::pages::{admin, login, members, sign_on, space, spaces};
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// The console's router, every route (and the fallback under `/console`) inside the
/// pipeline. Merged into the public REST listener's router by the binary.
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/console", get(login::landing))
        .route("/console/", get(login::landing))
        .route("/console/login", get(login::page).post(login::login))
        .route("/console/logout", post(login::logout))
        .route("/console/static/console.css", get(login::stylesheet))
        .route("/console/spaces", get(spaces::list).post(spaces::create))
        .route("/console/spaces/{id}", get(space::show))
        .route("/console/spaces/{id}/messages", post(space::post))
        .route(
            "/console/spaces/{id}/messages/{msgId}/delete",
            post(space::delete),
        )
        .route(
            "/console/spaces/{id}/members",
            get(members::list).post(members::grant),
        )
        .route(
            "/console/spaces/{id}/members/{username}/revoke",
            post(members::revoke),
        )
        .route("/console/audit", get(admin::audit))
        .route("/console/alerts", get(admin::alerts))
        .route("/console/activity", get(admin::activity))
        .route("/console/saml/metadata", get(sign_on::saml_metadata))
        .route("/console/saml/login", post(sign_on::saml_start))
        .route("/console/saml/acs", post(sign_on::saml_acs))
        .route("/console/oidc/login", post(sign_on::oidc_start))
        .route("/console/oidc/callback", get(sign_on::oidc_callback))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(from_fn_with_state(console.clone(), secured))
        .with_state(console)
}

async fn not_found() -> axum::response::Response {
    ConsoleError::NotFound.into_response()
}
