//! The caller's spaces, and creating one.

use super::render::{Chrome, render, see_other};
use crate::Console;
use crate::adapter::{FormFields, SessionContext};
use crate::answer::ConsoleError;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use natterjack_core::ServiceError;
use natterjack_core::domain::SpaceName;
use natterjack_core::principal::{Caller, Principal};

/// A space as the list shows it.
pub(crate) struct SpaceRow {
    id: String,
    name: String,
    owner: String,
}

#[derive(Template)]
#[template(path = "spaces.html")]
struct SpacesPage {
    chrome: Option<Chrome>,
    csrf: String,
    spaces: Vec<SpaceRow>,
}

/// The principal of an admitted request whose operation needs one.
pub(crate) fn principal(caller: &Caller) -> Result<Principal, ConsoleError> {
    caller
        .principal()
        .cloned()
        .ok_or(ConsoleError::Service(ServiceError::Unauthenticated))
}

/// `GET /console/spaces`.
pub(crate) async fn list(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(session): Extension<SessionContext>,
) -> Result<Response, ConsoleError> {
    let principal = principal(&caller)?;
    let spaces = console.app.service.list_spaces(&principal).await?;
    Ok(render(&SpacesPage {
        chrome: Chrome::of(&principal, &session),
        csrf: session.csrf.clone(),
        spaces: spaces
            .into_iter()
            .map(|s| SpaceRow {
                id: s.id.to_string(),
                name: s.name.as_str().to_owned(),
                owner: s.owner.as_str().to_owned(),
            })
            .collect(),
    }))
}

/// `POST /console/spaces`: name, then to the new space.
pub(crate) async fn create(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(form): Extension<FormFields>,
) -> Result<Response, ConsoleError> {
    let principal = principal(&caller)?;
    let name = SpaceName::parse(form.get("name").unwrap_or_default())?;
    let space = console
        .app
        .service
        .create_space(&principal, name, None)
        .await?;
    Ok(see_other(&format!("/console/spaces/{}", space.id)))
}
