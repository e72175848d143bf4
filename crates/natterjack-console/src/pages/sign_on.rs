//! Single sign-on: sending the browser to its identity provider with a pending sign-on
//! bound to it by a cookie, and opening a session from the provider's answer.

use super::login::{open_session, sign_on_token};
use super::render::render;
use crate::adapter::{ClientIp, FormFields};
use crate::answer::ConsoleError;
use crate::{Console, SignOn, SignOnRefusal, cookies};
use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use natterjack_core::audit::AuthMethod;
use natterjack_core::domain::Timestamp;
use std::sync::Arc;

/// A page that moves the browser on by a `meta` refresh, with a plain link beside it.
///
/// - To the provider, answering a sign-on button: not a redirect, because the button is a
///   form on a page whose CSP says `form-action 'self'`, and browsers hold a form
///   submission's redirects to that directive, so a 303 to the provider would be blocked.
/// - To the spaces, once signed in: a redirect chain that began on the provider's site
///   would not carry the new `SameSite=Strict` cookie; a refresh is a navigation of this
///   origin's own.
#[derive(Template)]
#[template(path = "moving_on.html")]
struct MovingOn {
    title: &'static str,
    message: String,
    url: String,
    link: &'static str,
}

fn provider(configured: &Option<Arc<dyn SignOn>>) -> Result<&Arc<dyn SignOn>, ConsoleError> {
    configured.as_ref().ok_or(ConsoleError::NotFound)
}

/// Sends the browser to the provider: the pending sign-on is kept under the hash of a new
/// cookie, so only the browser that started it can finish it.
async fn start(console: &Console, sign_on: &Arc<dyn SignOn>) -> Result<Response, ConsoleError> {
    let (url, kept) = sign_on.begin().await.map_err(ConsoleError::SignOn)?;
    let cookie = sign_on_token();
    let now = console.app.clock.wall();
    let expires = Timestamp::from_micros(
        now.micros() + i64::try_from(cookies::SIGN_ON_LIFETIME.as_micros()).unwrap_or(i64::MAX),
    );
    console
        .sessions
        .store()
        .put_pending_login(&cookie.key(), sign_on.kind(), &kept, now, expires)
        .await
        .map_err(|e| ConsoleError::Service(e.into()))?;
    let mut response = render(&MovingOn {
        title: "Signing in",
        message: "Taking you to your identity provider to sign in.".to_owned(),
        url,
        link: "Continue",
    });
    if let Ok(v) = HeaderValue::from_str(&cookies::sign_on(&cookie)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Finishes a sign-on: the pending one of this browser is taken (once), the provider's
/// answer checked against it, and a session opened. The landing page moves on with a
/// `meta` refresh: a redirect chain that began on the provider's site would not carry the
/// new `SameSite=Strict` cookie.
async fn finish(
    console: &Console,
    sign_on: &Arc<dyn SignOn>,
    headers: &HeaderMap,
    fields: &[(String, String)],
    from: ClientIp,
) -> Result<Response, ConsoleError> {
    let cookie = cookies::read(headers, cookies::SIGN_ON).ok_or(ConsoleError::SignOn(
        SignOnRefusal::Refused("no sign-on was started in this browser"),
    ))?;
    let (kept, expires) = console
        .sessions
        .store()
        .take_pending_login(&cookie.key(), sign_on.kind())
        .await
        .map_err(|e| ConsoleError::Service(e.into()))?
        .ok_or(ConsoleError::SignOn(SignOnRefusal::Refused(
            "no pending sign-on for this browser (finished already, or never started)",
        )))?;
    if expires.micros() < console.app.clock.wall().micros() {
        return Err(ConsoleError::SignOn(SignOnRefusal::Refused(
            "the sign-on took too long",
        )));
    }
    let principal = sign_on
        .finish(fields, kept, from.0)
        .await
        .map_err(ConsoleError::SignOn)?;
    let page = render(&MovingOn {
        title: "Signed in",
        message: format!("Signed in as {}.", principal.username()),
        url: "/console/spaces".to_owned(),
        link: "Continue to your spaces",
    });
    let method = (AuthMethod::Session, sign_on.kind());
    let mut response = open_session(console, &principal, method, from, page).await?;
    if let Ok(v) = HeaderValue::from_str(&cookies::cleared(cookies::SIGN_ON)) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /console/saml/login`.
pub(crate) async fn saml_start(State(console): State<Console>) -> Result<Response, ConsoleError> {
    let saml = provider(&console.saml)?.clone();
    start(&console, &saml).await
}

/// `POST /console/saml/acs`: the identity provider's signed response, posted by the browser.
pub(crate) async fn saml_acs(
    State(console): State<Console>,
    headers: HeaderMap,
    Extension(form): Extension<FormFields>,
    Extension(from): Extension<ClientIp>,
) -> Result<Response, ConsoleError> {
    let saml = provider(&console.saml)?.clone();
    finish(&console, &saml, &headers, &form.0, from).await
}

/// `GET /console/saml/metadata`: the service provider's metadata for the identity provider.
pub(crate) async fn saml_metadata(
    State(console): State<Console>,
) -> Result<Response, ConsoleError> {
    let metadata = console
        .saml_metadata
        .clone()
        .ok_or(ConsoleError::NotFound)?;
    Ok((
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        metadata.to_string(),
    )
        .into_response())
}

/// `POST /console/oidc/login`.
pub(crate) async fn oidc_start(State(console): State<Console>) -> Result<Response, ConsoleError> {
    let oidc = provider(&console.oidc)?.clone();
    start(&console, &oidc).await
}

/// `GET /console/oidc/callback?code=&state=`.
pub(crate) async fn oidc_callback(
    State(console): State<Console>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Extension(from): Extension<ClientIp>,
) -> Result<Response, ConsoleError> {
    let oidc = provider(&console.oidc)?.clone();
    let fields: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    finish(&console, &oidc, &headers, &fields, from).await
}
