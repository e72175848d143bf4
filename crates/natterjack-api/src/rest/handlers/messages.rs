use super::created;
use crate::AppState;
use crate::rest::error::ApiError;
use crate::rest::extract::{Access, JsonBody, NoQuery, StrictQuery};
use crate::rest::views::{MessagePageView, MessageQuery, MessageView, NewMessage};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use natterjack_core::domain::{Limit, MessageId, MessageText, Timestamp};
use natterjack_core::ports::MessagePage;

/// The `{msgId}` path segment as a domain id (the pipeline parsed the `{id}` segment).
fn message_id(Path((_, msg_id)): Path<(String, String)>) -> Result<MessageId, ApiError> {
    Ok(MessageId::parse(&msg_id)?)
}

#[utoipa::path(operation_id = "postMessage", post, path = "/spaces/{id}/messages", tag = "messages", security(("basic" = []), ("bearer" = [])), params(("id" = i64, Path, description = "Space id", minimum = 1)), request_body = NewMessage, responses((status = 201, description = "Posted (needs w)", body = MessageView, headers(("location" = String, description = "The new message")))))]
/// `POST /spaces/{id}/messages` (needs `w`); the author is the caller.
pub(crate) async fn post(
    _: NoQuery,
    State(state): State<AppState>,
    Access(access): Access,
    JsonBody(body): JsonBody<NewMessage>,
) -> Result<Response, ApiError> {
    let text = MessageText::parse(&body.message)?;
    let view = MessageView::from(state.service.post_message(&access, text).await?);
    let location = view.uri.clone();
    Ok(created(&location, view))
}

#[utoipa::path(operation_id = "listMessages", get, path = "/spaces/{id}/messages", tag = "messages", security(("basic" = []), ("bearer" = [])), params(("id" = i64, Path, description = "Space id", minimum = 1), ("since" = Option<String>, Query, description = "RFC 3339: messages posted at or after", format = DateTime), ("limit" = Option<i64>, Query, description = "Page size", minimum = 1, maximum = 100), ("after" = Option<i64>, Query, description = "Cursor: messages with a smaller id", minimum = 1)), responses((status = 200, description = "Newest first (needs r)", body = MessagePageView)))]
/// `GET /spaces/{id}/messages?since=&limit=&after=` (needs `r`): newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    Access(access): Access,
    StrictQuery(query): StrictQuery<MessageQuery>,
) -> Result<Json<MessagePageView>, ApiError> {
    let page = MessagePage {
        since: query
            .since
            .as_deref()
            .map(|s| Timestamp::parse("since", s))
            .transpose()?,
        after: query
            .after
            .as_deref()
            .map(MessageId::parse)
            .transpose()
            .map_err(|e| natterjack_core::domain::FieldError::new("after", e.reason()))?,
        limit: query
            .limit
            .as_deref()
            .map(Limit::parse)
            .transpose()?
            .unwrap_or(Limit::DEFAULT),
    };
    let messages = state.service.list_messages(&access, page).await?;
    let next = (messages.len() == usize::from(page.limit.get()))
        .then(|| messages.last())
        .flatten()
        .map(|last| {
            let since = page
                .since
                .map(|t| format!("&since={}", t.to_rfc3339()))
                .unwrap_or_default();
            format!(
                "/spaces/{}/messages?after={}&limit={}{since}",
                access.space(),
                last.id,
                page.limit.get()
            )
        });
    Ok(Json(MessagePageView {
        messages: messages.into_iter().map(MessageView::from).collect(),
        next,
    }))
}

#[utoipa::path(operation_id = "getMessage", get, path = "/spaces/{id}/messages/{msgId}", tag = "messages", security(("basic" = []), ("bearer" = [])), params(("id" = i64, Path, description = "Space id", minimum = 1), ("msgId" = i64, Path, description = "Message id", minimum = 1)), responses((status = 200, description = "The message (needs r)", body = MessageView)))]
/// `GET /spaces/{id}/messages/{msgId}` (needs `r`); 404 for a message of another space.
pub(crate) async fn show(
    _: NoQuery,
    State(state): State<AppState>,
    Access(access): Access,
    path: Path<(String, String)>,
) -> Result<Json<MessageView>, ApiError> {
    let id = message_id(path)?;
    Ok(Json(state.service.get_message(&access, id).await?.into()))
}

#[utoipa::path(operation_id = "deleteMessage", delete, path = "/spaces/{id}/messages/{msgId}", tag = "messages", security(("basic" = []), ("bearer" = [])), params(("id" = i64, Path, description = "Space id", minimum = 1), ("msgId" = i64, Path, description = "Message id", minimum = 1)), responses((status = 204, description = "Deleted (needs d)")))]
/// `DELETE /spaces/{id}/messages/{msgId}` (needs `d`): moderation.
pub(crate) async fn delete(
    _: NoQuery,
    State(state): State<AppState>,
    Access(access): Access,
    path: Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = message_id(path)?;
    state.service.delete_message(&access, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
