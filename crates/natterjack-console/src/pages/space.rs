//! A space's messages, newest first, with posting and deleting.

use super::render::{Chrome, render, see_other};
use super::spaces::principal;
use crate::Console;
use crate::adapter::{FormFields, SessionContext};
use crate::answer::ConsoleError;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use natterjack_core::access::SpaceAccess;
use natterjack_core::domain::{Limit, MessageId, MessageText, Permissions};
use natterjack_core::ports::MessagePage;
use natterjack_core::principal::Caller;
use serde::Deserialize;

/// A message as the page shows it (escaped by the template).
struct MessageRow {
    id: String,
    author: String,
    body: String,
    at: String,
}

#[derive(Template)]
#[template(path = "space.html")]
struct SpacePage {
    chrome: Option<Chrome>,
    csrf: String,
    id: String,
    name: String,
    held: String,
    can_write: bool,
    can_delete: bool,
    messages: Vec<MessageRow>,
    older_than: Option<String>,
    next: Option<String>,
}

/// The page's query: the cursor of older messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    after: Option<String>,
}

/// `GET /console/spaces/{id}?after=`: 20 messages, newest first.
pub(crate) async fn show(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(access): Extension<SpaceAccess>,
    Extension(session): Extension<SessionContext>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ConsoleError> {
    let principal = principal(&caller)?;
    let service = &console.app.service;
    let space = service.get_space(&access).await?;
    let after = query
        .after
        .as_deref()
        .map(MessageId::parse)
        .transpose()
        .map_err(|e| natterjack_core::domain::FieldError::new("after", e.reason()))?;
    let limit = Limit::DEFAULT;
    let messages = service
        .list_messages(
            &access,
            MessagePage {
                since: None,
                after,
                limit,
            },
        )
        .await?;
    let next = (messages.len() == usize::from(limit.get()))
        .then(|| messages.last().map(|m| m.id.to_string()))
        .flatten();
    let held = access.held();
    Ok(render(&SpacePage {
        chrome: Chrome::of(&principal, &session),
        csrf: session.csrf.clone(),
        id: space.id.to_string(),
        name: space.name.as_str().to_owned(),
        held: held.to_string(),
        can_write: held.contains(Permissions::WRITE),
        can_delete: held.contains(Permissions::DELETE),
        messages: messages
            .into_iter()
            .map(|m| MessageRow {
                id: m.id.to_string(),
                author: m.author.as_str().to_owned(),
                body: m.body.as_str().to_owned(),
                at: m.created_at.to_rfc3339(),
            })
            .collect(),
        older_than: after.map(|a| a.to_string()),
        next,
    }))
}

/// `POST /console/spaces/{id}/messages`: `body`.
pub(crate) async fn post(
    State(console): State<Console>,
    Extension(access): Extension<SpaceAccess>,
    Extension(form): Extension<FormFields>,
) -> Result<Response, ConsoleError> {
    let body = MessageText::parse(form.get("body").unwrap_or_default())?;
    console.app.service.post_message(&access, body).await?;
    Ok(see_other(&format!("/console/spaces/{}", access.space())))
}

/// `POST /console/spaces/{id}/messages/{msgId}/delete`.
pub(crate) async fn delete(
    State(console): State<Console>,
    Extension(access): Extension<SpaceAccess>,
    Path((_, message)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let id = MessageId::parse(&message)
        .map_err(|e| natterjack_core::domain::FieldError::new("msgId", e.reason()))?;
    console.app.service.delete_message(&access, id).await?;
    Ok(see_other(&format!("/console/spaces/{}", access.space())))
}
