//! The REST adapter of the pipeline: describes each request to [`crate::pipeline::admit`],
//! answers its refusals through [`ApiError`], and hands the handler what it admitted.

use super::error::{ApiError, AuditReason};
use super::hygiene::{answer_refused, check_form, limit_body};
use super::operations::declared;
use super::{panic, safe_output};
use crate::AppState;
use crate::pipeline::rate_limit::client_ip::client_ip;
use crate::pipeline::rate_limit::{Class, REGISTRATION_PATH};
use crate::pipeline::{
    Call, CredentialError, Draft, Inbound, PipelineLimits, admit, complete, headers, request_id,
};
use crate::schemes::{self, basic::CredentialsError};
use crate::transport::PeerAddr;
use axum::RequestExt;
use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{Method, header};
use natterjack_core::audit::record::clean;
use natterjack_core::audit::{Status, Transport};
use natterjack_core::auth::Credential;
use natterjack_core::domain::SpaceId;
use std::net::{IpAddr, Ipv4Addr};
use tokio::time::timeout_at;
use tower::ServiceBuilder;

/// Wraps `routes` in the security pipeline. Every route of every REST router goes through
/// here; there is no other way to build the application, so no handler can opt out.
pub fn secure_pipeline(
    routes: Router<AppState>,
    state: AppState,
    limits: PipelineLimits,
) -> Router {
    let controls = ServiceBuilder::new()
        // Safe output on every response, errors included: the security headers, then the
        // request id for logs and problem bodies.
        .layer(from_fn(headers::stamp))
        .layer(from_fn(request_id::assign))
        // The pipeline's steps, its deadline and every request's `complete` record.
        .layer(from_fn_with_state((state.clone(), limits), run))
        // A panic becomes a 500 problem; errors made by the router (405) get a problem body.
        .layer(from_fn(panic::catch))
        .layer(from_fn(safe_output::problem_for_bare_errors));
    routes
        .fallback(safe_output::no_such_route)
        .layer(controls)
        .with_state(state)
}

/// What the pipeline reads from an HTTP request, each part when its step asks for it.
struct Head<'a> {
    parts: &'a Parts,
    body_is_empty: bool,
    /// The `{id}` path segment; `Err` when the path could not be decoded.
    space: Result<Option<String>, ()>,
}

impl Inbound for Head<'_> {
    type Error = ApiError;

    fn well_formed(&mut self) -> Result<(), ApiError> {
        check_form(self.parts, self.body_is_empty)
    }

    fn credential(&mut self) -> Result<Option<Credential>, CredentialError> {
        let mut values = self.parts.headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let malformed = CredentialError::Malformed("malformed Authorization header");
        if values.next().is_some() {
            return Err(malformed);
        }
        let value = value.to_str().map_err(|_| malformed)?;
        match schemes::credential(value) {
            Ok(credential) => Ok(Some(credential)),
            Err(CredentialsError::Malformed) => Err(malformed),
            Err(CredentialsError::UnsupportedScheme) => {
                Err(CredentialError::Unsupported("unsupported scheme"))
            }
        }
    }

    fn space(&mut self) -> Result<Option<SpaceId>, ApiError> {
        match &self.space {
            Err(()) => Err(ApiError::InvalidPath),
            Ok(None) => Ok(None),
            Ok(Some(id)) => Ok(Some(SpaceId::parse(id)?)),
        }
    }
}

/// The request's rate-limit class, from its method, path and the mere presence of
/// credentials.
fn class_of(req: &Request) -> Class {
    if req.method() == Method::POST && req.uri().path() == REGISTRATION_PATH {
        Class::Registration
    } else if req.headers().contains_key(header::AUTHORIZATION) {
        Class::Credentials
    } else {
        Class::Plain
    }
}

async fn run(
    State((state, limits)): State<(AppState, PipelineLimits)>,
    mut req: Request,
    next: Next,
) -> Response {
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let (target, space) = match req.extract_parts::<RawPathParams>().await {
        Ok(params) => (
            params
                .iter()
                .map(|(k, v)| format!("{k}={}", clean(v, 64)))
                .collect::<Vec<_>>()
                .join(" "),
            Ok(params
                .iter()
                .find(|(k, _)| *k == "id")
                .map(|(_, v)| v.to_owned())),
        ),
        Err(_) => ("(undecodable path)".to_owned(), Err(())),
    };
    let label = format!(
        "{} {}",
        req.method(),
        route.as_deref().unwrap_or("(no route)")
    );
    let mut draft = Draft::new(
        Transport::Rest,
        request_id::current(),
        &label,
        &target,
        state.clock.clone(),
    );
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
    let call = Call {
        operation: route
            .as_deref()
            .and_then(|route| declared(req.method(), route)),
        class: class_of(&req),
        client_ip: Some(client_ip(
            peer,
            req.headers(),
            state.limits.trusted_proxies(),
        )),
    };
    let body_is_empty = req.body().is_end_stream();
    let (parts, body) = req.into_parts();
    let mut head = Head {
        parts: &parts,
        body_is_empty,
        space,
    };
    let admitted = timeout_at(deadline, admit(&state, &call, &mut head, &mut draft)).await;
    let mut req = Request::from_parts(parts, body);
    let response = match admitted {
        Ok(Ok(admitted)) => {
            if call.operation.is_some() {
                req.extensions_mut().insert(admitted.caller);
                if let Some(access) = admitted.access {
                    req.extensions_mut().insert(access);
                }
            }
            timeout_at(deadline, next.run(limit_body(req)))
                .await
                .unwrap_or_else(|_| ApiError::TimedOut.into_response())
        }
        Ok(Err(refused)) => answer_refused(req, refused).await,
        Err(_) => ApiError::TimedOut.into_response(),
    };
    let reason = response
        .extensions()
        .get::<AuditReason>()
        .map(|r| r.0.clone());
    complete(
        &state,
        draft,
        Status::Http(response.status().as_u16()),
        reason,
    )
    .await;
    response
}
