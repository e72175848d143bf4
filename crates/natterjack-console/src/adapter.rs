//! The console's adapter of the pipeline: it describes each request to
//! `natterjack_api::pipeline::admit` (rate limits first, then the form checks, the
//! session or login credential, the intent record and access control), answers refusals
//! through [`ConsoleError`], and records the `complete` step.
//!
//! What only browsers need is decided here, before any handler runs, for every route:
//! - a POST must come from the console's own origin (`Origin` equal to it, and
//!   `Sec-Fetch-Site`, when sent, `same-origin`), except the SAML assertion consumer;
//! - a POST must be a form (`application/x-www-form-urlencoded`, at most 16 KiB);
//! - a POST made with a session must carry the session's CSRF token, or the cookie is not
//!   even looked up.

use crate::Console;
use crate::answer::{AuditReason, AuditStatus, ConsoleError, NoSession};
use crate::cookies;
use crate::operations::{declared, needs_csrf_token, needs_same_origin};
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, Method, header};
use http_body_util::BodyExt;
use natterjack_api::pipeline::rate_limit::Class;
use natterjack_api::pipeline::rate_limit::client_ip::client_ip;
use natterjack_api::pipeline::{
    Call, CredentialError, Draft, Inbound, MAX_BODY_BYTES, admit, complete, request_id,
};
use natterjack_api::rest::hygiene::path_target;
use natterjack_api::transport::PeerAddr;
use natterjack_core::audit::{AuthMethod, Status, Transport};
use natterjack_core::auth::Credential;
use natterjack_core::domain::SpaceId;
use secrecy::SecretString;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// The fields of a POSTed form, parsed once by the adapter (the CSRF check needs them
/// before any handler).
#[derive(Debug, Clone, Default)]
pub struct FormFields(pub Arc<Vec<(String, String)>>);

impl FormFields {
    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The session a page is rendered for: its key's short form and the CSRF token its forms
/// must carry.
#[derive(Debug, Clone)]
pub struct SessionContext {
    /// The session's key.
    pub key: natterjack_core::session::SessionKey,
    /// The token for the hidden `csrf` field of every form.
    pub csrf: String,
}

/// Set by a handler that opened a session (a login or a sign-on): who signed in and how,
/// and the session's key, for the audit record.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The principal's name.
    pub principal: String,
    /// How they proved it.
    pub method: AuthMethod,
    /// The short key of the session opened.
    pub session: String,
}

/// What the pipeline reads of a console request, each part when its step asks for it.
struct Page<'a> {
    console: &'a Console,
    parts: &'a Parts,
    route: &'a str,
    body: Option<Body>,
    form: Option<FormFields>,
    session: Option<SessionContext>,
    space: Result<Option<String>, ()>,
}

impl Page<'_> {
    fn is_post(&self) -> bool {
        self.parts.method == Method::POST
    }

    /// A POST from another site: `Origin` missing or not ours, or a browser that says the
    /// request was started by another site.
    fn cross_site(&self) -> bool {
        let headers = &self.parts.headers;
        let fetch_site = headers
            .get("sec-fetch-site")
            .map(|v| v.as_bytes() == b"same-origin");
        let ours = match &self.console.origin {
            Some(origin) => Some(origin.clone()),
            None => headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or(self.parts.uri.authority().map(|a| a.as_str()))
                .map(|host| format!("https://{host}")),
        };
        let origin = match (headers.get(header::ORIGIN), ours) {
            (Some(sent), Some(ours)) => sent.as_bytes() == ours.as_bytes(),
            _ => false,
        };
        fetch_site == Some(false) || !origin
    }

    /// Reads the form once. A `password` field is taken out into a secret (zeroized when
    /// dropped) and never kept with the fields the page gets.
    async fn read_form(&mut self) -> Result<(FormFields, Option<SecretString>), CredentialError> {
        if let Some(form) = &self.form {
            return Ok((form.clone(), None));
        }
        let body = self.body.take().unwrap_or_default();
        let bytes = http_body_util::Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|_| CredentialError::Malformed("form over the size limit or unreadable"))?
            .to_bytes();
        let mut password = None;
        let mut fields = Vec::new();
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            if k == "password" {
                password.get_or_insert_with(|| SecretString::from(v.into_owned()));
            } else {
                fields.push((k.into_owned(), v.into_owned()));
            }
        }
        let form = FormFields(Arc::new(fields));
        self.form = Some(form.clone());
        Ok((form, password))
    }
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl Inbound for Page<'_> {
    type Error = ConsoleError;

    fn well_formed(&mut self) -> Result<(), ConsoleError> {
        if !natterjack_api::rest::hygiene::headers_within_limits(&self.parts.headers) {
            return Err(ConsoleError::BadForm("header fields over the limit"));
        }
        if self.is_post() {
            if needs_same_origin(self.route) && self.cross_site() {
                return Err(ConsoleError::CrossSite);
            }
            if !is_form(self.parts) {
                return Err(ConsoleError::NotAForm);
            }
        }
        Ok(())
    }

    async fn credential(&mut self) -> Result<Option<Credential>, CredentialError> {
        let form = if self.is_post() && declared(&self.parts.method, self.route).is_some() {
            let (form, password) = self.read_form().await?;
            if self.route == "/console/login" {
                let username = form.get("username").unwrap_or_default().to_owned();
                let password = password.unwrap_or_else(|| SecretString::from(""));
                return Ok(Some(Credential::Password { username, password }));
            }
            Some(form)
        } else {
            None
        };
        let Some(token) = cookies::read(&self.parts.headers, cookies::SESSION) else {
            return Ok(None);
        };
        if let Some(form) = &form
            && needs_csrf_token(self.route)
            && !token.csrf_matches(form.get("csrf").unwrap_or_default())
        {
            return Err(CredentialError::Forged("CSRF token missing or wrong"));
        }
        self.session = Some(SessionContext {
            key: token.key(),
            csrf: token.csrf(),
        });
        Ok(Some(Credential::Session { token }))
    }

    fn space(&mut self) -> Result<Option<SpaceId>, ConsoleError> {
        match &self.space {
            Err(()) => Err(ConsoleError::NotFound),
            Ok(None) => Ok(None),
            Ok(Some(id)) => Ok(Some(SpaceId::parse(id)?)),
        }
    }
}

/// The rate-limit class: a password login is a credential to verify; anything else costs
/// at most a session lookup.
fn class_of(req: &Request) -> Class {
    if req.method() == Method::POST && req.uri().path() == "/console/login" {
        Class::Credentials
    } else {
        Class::Plain
    }
}

/// The middleware every console route (and the fallback) runs inside.
pub async fn secured(State(console): State<Console>, req: Request, next: Next) -> Response {
    let id = request_id::fresh();
    let span = tracing::info_span!("console", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut response = request_id::scope(
        id.clone(),
        tracing::Instrument::instrument(run(&console, req, next, id.clone()), span),
    )
    .await;
    crate::headers::apply(response.headers_mut());
    if let Ok(value) = HeaderValue::try_from(id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    response
}

async fn run(console: &Console, mut req: Request, next: Next, request_id: String) -> Response {
    let state = &console.app;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let (target, space) = path_target(&mut req).await;
    let label = format!(
        "{} {}",
        req.method(),
        route.as_deref().unwrap_or("/console (no route)")
    );
    let mut draft = Draft::new(
        Transport::Console,
        request_id,
        &label,
        &target,
        state.clock.clone(),
    );
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
    let ip = client_ip(peer, req.headers(), state.limits.trusted_proxies());
    let call = Call {
        operation: route
            .as_deref()
            .and_then(|route| declared(req.method(), route)),
        class: class_of(&req),
        client_ip: Some(ip),
    };
    let (parts, body) = req.into_parts();
    let cookie_presented = cookies::presented(&parts.headers, cookies::SESSION);
    let route_text = route.clone().unwrap_or_default();
    let mut page = Page {
        console,
        parts: &parts,
        route: &route_text,
        body: Some(body),
        form: None,
        session: None,
        space,
    };
    let admitted =
        tokio::time::timeout_at(deadline, admit(state, &call, &mut page, &mut draft)).await;
    let (form, session) = (page.form.take(), page.session.take());
    let mut req = Request::from_parts(parts, Body::empty());
    let mut renewed = None;
    let response = match admitted {
        Ok(Ok(admitted)) => {
            if call.operation.is_some() {
                if let Some(session) = session
                    && admitted.caller.principal().is_some()
                {
                    let session = match console.sessions.take_renewal(&session.key) {
                        Some(new) => {
                            let context = SessionContext {
                                key: new.key(),
                                csrf: new.csrf(),
                            };
                            renewed = Some(new);
                            context
                        }
                        None => session,
                    };
                    draft.session(session.key.short());
                    req.extensions_mut().insert(session);
                }
                req.extensions_mut().insert(admitted.caller);
                if let Some(access) = admitted.access {
                    req.extensions_mut().insert(access);
                }
                req.extensions_mut().insert(form.unwrap_or_default());
                req.extensions_mut().insert(ClientIp(ip));
            }
            match tokio::time::timeout_at(deadline, next.run(req)).await {
                Ok(response) => response,
                Err(_) => ConsoleError::Refused(natterjack_api::pipeline::Refusal::TimedOut)
                    .into_response(),
            }
        }
        Ok(Err(ConsoleError::Refused(natterjack_api::pipeline::Refusal::Unauthenticated)))
            if route_text == "/console/login" =>
        {
            ConsoleError::wrong_login(console).into_response()
        }
        Ok(Err(refused)) => {
            let mut response = refused.into_response();
            // A credential that was refused: the audit record says why (a session revoked,
            // idle, expired or ended by a password change), not only "please log in".
            if let Some(why) = draft.refused_because() {
                response
                    .extensions_mut()
                    .insert(AuditReason(why.to_owned()));
            }
            response
        }
        Err(_) => {
            ConsoleError::Refused(natterjack_api::pipeline::Refusal::TimedOut).into_response()
        }
    };
    let mut response = response;
    if let Some(new) = renewed
        && let Ok(v) = HeaderValue::from_str(&cookies::session(&new))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    if cookie_presented
        && response.extensions().get::<NoSession>().is_some()
        && let Ok(v) = HeaderValue::from_str(&cookies::cleared(cookies::SESSION))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    if let Some(signed) = response.extensions().get::<SignedIn>().cloned() {
        draft.signed_in(&signed.principal, signed.method);
        draft.session(signed.session);
    }
    let reason = response
        .extensions()
        .get::<AuditReason>()
        .map(|r| r.0.clone());
    let status = response
        .extensions()
        .get::<AuditStatus>()
        .map_or(response.status(), |s| s.0);
    complete(state, draft, Status::Http(status.as_u16()), reason).await;
    response
}

/// The client's address as the pipeline attributed it, for sessions opened by a page.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);
