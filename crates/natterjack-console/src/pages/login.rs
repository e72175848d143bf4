//! The login form, password logins, logout, and the landing redirect.

use super::render::{Chrome, render, see_other};
use crate::Console;
use crate::adapter::{ClientIp, SessionContext, SignedIn};
use crate::answer::ConsoleError;
use crate::cookies;
use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use natterjack_core::audit::AuthMethod;
use natterjack_core::principal::{Caller, Principal};
use natterjack_core::session::SessionToken;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Option<Chrome>,
    problem: Option<String>,
    username: String,
    saml: bool,
    oidc: bool,
}

/// The login form, with a problem to show and the name to fill in again.
pub(crate) fn form(
    username: Option<String>,
    problem: Option<String>,
    saml: bool,
    oidc: bool,
) -> Response {
    render(&LoginPage {
        chrome: None,
        problem,
        username: username.unwrap_or_default(),
        saml,
        oidc,
    })
}

/// `GET /console/login`.
pub(crate) async fn page(State(console): State<Console>) -> Response {
    form(None, None, console.saml.is_some(), console.oidc.is_some())
}

/// `GET /console/`: to the spaces with a session, to the login form without.
pub(crate) async fn landing(Extension(caller): Extension<Caller>) -> Response {
    match caller {
        Caller::User(_) => see_other("/console/spaces"),
        Caller::Anonymous => see_other("/console/login"),
    }
}

/// Opens a session for `principal`, who signed in by `kind` (`password`, or the sign-on's
/// [`crate::SignOn::kind`], as the operator's session list shows it), and answers with its
/// cookie; `then` is the response that carries it (a redirect, or the sign-on's landing
/// page).
pub(crate) async fn open_session(
    console: &Console,
    principal: &Principal,
    (method, kind): (AuthMethod, &str),
    from: ClientIp,
    mut then: Response,
) -> Result<Response, ConsoleError> {
    let (token, key) = console.sessions.open(principal, kind, from.0).await?;
    if let Ok(v) = HeaderValue::from_str(&cookies::session(&token)) {
        then.headers_mut().append(header::SET_COOKIE, v);
    }
    then.extensions_mut().insert(SignedIn {
        principal: principal.username().as_str().to_owned(),
        method,
        session: key.short(),
    });
    Ok(then)
}

/// `POST /console/login`: the pipeline verified the form's username and password (with
/// the login budgets and rate limits of any password); a new session opens, whatever
/// cookie the browser had.
pub(crate) async fn login(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Extension(from): Extension<ClientIp>,
) -> Result<Response, ConsoleError> {
    let principal = caller
        .principal()
        .ok_or_else(|| ConsoleError::wrong_login(&console))?
        .clone();
    open_session(
        &console,
        &principal,
        (AuthMethod::Basic, "password"),
        from,
        see_other("/console/spaces"),
    )
    .await
}

/// `POST /console/logout`: the session ends on the server, and the cookie in the browser.
pub(crate) async fn logout(
    State(console): State<Console>,
    Extension(session): Extension<SessionContext>,
) -> Result<Response, ConsoleError> {
    console.sessions.close(&session.key).await?;
    let mut response = see_other("/console/login");
    if let Ok(v) = HeaderValue::from_str(&cookies::cleared(cookies::SESSION)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `GET /console/static/console.css`.
pub(crate) async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/console.css"),
    )
        .into_response()
}

/// A fresh token for a pending sign-on's cookie (never the session's).
pub(crate) fn sign_on_token() -> SessionToken {
    SessionToken::generate()
}
