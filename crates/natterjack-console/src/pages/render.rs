//! Rendering: askama templates (HTML-escaped by default) into responses, and the page
//! chrome every signed-in page shares.

use crate::adapter::SessionContext;
use askama::Template;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::StatusCode;
use natterjack_core::principal::Principal;

/// The header of a signed-in page: who, the CSRF token of its logout form, the admin links.
pub(crate) struct Chrome {
    pub(crate) user: String,
    pub(crate) csrf: String,
    pub(crate) admin: bool,
}

impl Chrome {
    /// The chrome for `principal` in `session`.
    pub(crate) fn of(principal: &Principal, session: &SessionContext) -> Option<Self> {
        Some(Self {
            user: principal.username().as_str().to_owned(),
            csrf: session.csrf.clone(),
            admin: principal.admin_access().is_some(),
        })
    }
}

/// A page as HTML; a template that fails to render is a 500 with nothing of it shown.
pub(crate) fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// After a successful POST: back to a page with a GET (so a reload does not post again).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The page of an error.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    chrome: Option<Chrome>,
    status: String,
    message: String,
}

impl ErrorPage {
    /// A page saying `message` under the heading `status`.
    pub(crate) fn new(status: StatusCode, message: String) -> Self {
        Self {
            chrome: None,
            status: format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
            message,
        }
    }
}
