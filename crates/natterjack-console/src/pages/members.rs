//! A space's members: granting and revoking within the escalation rule, with a refusal
//! explained on the page itself.

use super::render::{Chrome, render, see_other};
use super::spaces::principal;
use crate::Console;
use crate::adapter::{FormFields, SessionContext};
use crate::answer::{AuditReason, ConsoleError};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use natterjack_core::ServiceError;
use natterjack_core::access::SpaceAccess;
use natterjack_core::domain::{FieldError, Permissions, Username};
use natterjack_core::principal::Caller;

struct MemberRow {
    username: String,
    permissions: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    chrome: Option<Chrome>,
    csrf: String,
    id: String,
    name: String,
    held: String,
    members: Vec<MemberRow>,
    problem: Option<String>,
}

async fn page(
    console: &Console,
    caller: &Caller,
    access: &SpaceAccess,
    session: &SessionContext,
    problem: Option<String>,
) -> Result<Response, ConsoleError> {
    let principal = principal(caller)?;
    let service = &console.app.service;
    let space = service.get_space(access).await?;
    let members = service.list_members(access).await?;
    Ok(render(&MembersPage {
        chrome: Chrome::of(&principal, session),
        csrf: session.csrf.clone(),
        id: space.id.to_string(),
        name: space.name.as_str().to_owned(),
        held: access.held().to_string(),
        members: members
            .into_iter()
            .map(|m| MemberRow {
                username: m.username.as_str().to_owned(),
                permissions: m.permissions.to_string(),
            })
            .collect(),
        problem,
    }))
}

/// `GET /console/spaces/{id}/members`.
pub(crate) async fn list(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(access): Extension<SpaceAccess>,
    Extension(session): Extension<SessionContext>,
) -> Result<Response, ConsoleError> {
    page(&console, &caller, &access, &session, None).await
}

/// A refusal of the escalation rule (or a bad name) shown on the members page itself,
/// with its status and audit reason, so the owner sees why and can correct the form.
async fn explained(
    console: &Console,
    caller: &Caller,
    access: &SpaceAccess,
    session: &SessionContext,
    error: ServiceError,
) -> Result<Response, ConsoleError> {
    let (status, text) = match &error {
        ServiceError::Forbidden(why) => (StatusCode::FORBIDDEN, format!("Refused: {why}.")),
        ServiceError::NotFound(what) => {
            (StatusCode::NOT_FOUND, format!("Refused: no such {what}."))
        }
        ServiceError::Invalid(field) => (StatusCode::BAD_REQUEST, format!("Refused: {field}.")),
        _ => return Err(error.into()),
    };
    let mut response = page(console, caller, access, session, Some(text.clone())).await?;
    *response.status_mut() = status;
    response.extensions_mut().insert(AuditReason(text));
    Ok(response)
}

fn fields(form: &FormFields) -> Result<(Username, Permissions), ServiceError> {
    let user = Username::parse(form.get("username").unwrap_or_default())
        .map_err(|e| ServiceError::Invalid(FieldError::new("username", e.reason())))?;
    let permissions = Permissions::parse(form.get("permissions").unwrap_or_default())
        .map_err(ServiceError::Invalid)?;
    Ok((user, permissions))
}

/// `POST /console/spaces/{id}/members`: `username`, `permissions`.
pub(crate) async fn grant(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(access): Extension<SpaceAccess>,
    Extension(session): Extension<SessionContext>,
    Extension(form): Extension<FormFields>,
) -> Result<Response, ConsoleError> {
    let outcome = match fields(&form) {
        Ok((user, permissions)) => console
            .app
            .service
            .grant(&access, &user, permissions)
            .await
            .map(drop),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => Ok(see_other(&format!(
            "/console/spaces/{}/members",
            access.space()
        ))),
        Err(e) => explained(&console, &caller, &access, &session, e).await,
    }
}

/// `POST /console/spaces/{id}/members/{username}/revoke`: `permissions` (all when empty).
pub(crate) async fn revoke(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(access): Extension<SpaceAccess>,
    Extension(session): Extension<SessionContext>,
    Extension(form): Extension<FormFields>,
    Path((_, username)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let outcome = async {
        let user = Username::parse(&username)
            .map_err(|e| ServiceError::Invalid(FieldError::new("username", e.reason())))?;
        let permissions = match form.get("permissions").unwrap_or_default() {
            "" => None,
            text => Some(Permissions::parse(text).map_err(ServiceError::Invalid)?),
        };
        console
            .app
            .service
            .revoke(&access, &user, permissions)
            .await
            .map(drop)
    }
    .await;
    match outcome {
        Ok(()) => Ok(see_other(&format!(
            "/console/spaces/{}/members",
            access.space()
        ))),
        Err(e) => explained(&console, &caller, &access, &session, e).await,
    }
}
