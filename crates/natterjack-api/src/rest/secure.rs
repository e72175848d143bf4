//! The REST adapter of the pipeline: describes each request to [`crate::pipeline::admit`],
//! answers its refusals through [`ApiError`], and hands the handler what it admitted.

use super::error::{ApiError, AuditReason};
use super::hygiene::{answer_refused, check_form, closing_if, limit_body, path_target};
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
use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{HeaderValue, Method, header};
use natterjack_core::audit::{Status, Transport};
use natterjack_core::auth::Credential;
use natterjack_core::domain::SpaceId;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::timeout_at;
use tower::{Layer, Service, ServiceExt};

/// Wraps `routes` in the security pipeline. Every route of every REST router goes through
/// here; there is no other way to build the application, so no handler can opt out.
pub fn secure_pipeline(
    routes: Router<AppState>,
    state: AppState,
    limits: PipelineLimits,
) -> Router {
    let controls = Secure(Arc::new(Controls {
        state: state.clone(),
        limits,
    }));
    routes
        .fallback(safe_output::no_such_route)
        .layer(controls)
        .with_state(state)
}

/// What the pipeline's layer holds for every request: the application state and the
/// pipeline's limits, behind one pointer.
struct Controls {
    state: AppState,
    limits: PipelineLimits,
}

/// The pipeline as one tower layer around each route (the route must be matched first: the
/// pipeline reads the route template and its path parameters). One layer rather than a
/// stack of middleware functions, because each of those clones the services below it and
/// boxes a future and a service on every request.
#[derive(Clone)]
struct Secure(Arc<Controls>);

impl<S> Layer<S> for Secure {
    type Service = Secured<S>;

    fn layer(&self, inner: S) -> Secured<S> {
        Secured {
            inner,
            controls: self.0.clone(),
        }
    }
}

/// A route behind the pipeline.
#[derive(Clone)]
struct Secured<S> {
    inner: S,
    controls: Arc<Controls>,
}

impl<S> Service<Request> for Secured<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service that was polled ready serves this request; a clone stays behind.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let controls = self.controls.clone();
        Box::pin(async move { Ok(secured(&controls, ready, req).await) })
    }
}

/// One request through the pipeline. Outside in: the security headers and the request id on
/// every response, errors included; the id scoped over the rest for logs and problem
/// bodies; then the pipeline's steps, its deadline and the `complete` record ([`run`]).
async fn secured<S>(controls: &Controls, handler: S, req: Request) -> Response
where
    S: Service<Request, Error = Infallible> + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    let id = request_id::fresh();
    let version = req.version();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut response = request_id::scope(
        id.clone(),
        tracing::Instrument::instrument(run(controls, req, handler, id.clone()), span),
    )
    .await;
    headers::apply(response.headers_mut());
    if let Ok(value) = HeaderValue::try_from(id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    // Shutting down: an HTTP/1.1 client opens its next connection through its balancer,
    // which no longer picks this node, instead of reusing one this node is about to close.
    closing_if(!controls.state.lifecycle.is_serving(), version, response)
}

/// The handler behind the pipeline: a panic becomes a 500 problem, and an error response
/// without a problem body (a 405 from the router) gets one.
async fn handle<S>(handler: S, req: Request) -> Response
where
    S: Service<Request, Error = Infallible> + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    let answered = async move {
        let response = match handler.oneshot(req).await {
            Ok(response) => response.into_response(),
            Err(never) => match never {},
        };
        safe_output::problem_for_bare_errors(response)
    };
    panic::catching(answered).await
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

    async fn credential(&mut self) -> Result<Option<Credential>, CredentialError> {
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

async fn run<S>(controls: &Controls, mut req: Request, handler: S, request_id: String) -> Response
where
    S: Service<Request, Error = Infallible> + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    let (state, limits) = (&controls.state, controls.limits);
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    let route = req.extensions().get::<MatchedPath>().cloned();
    let (target, space) = path_target(&mut req).await;
    let label = format!(
        "{} {}",
        req.method(),
        route.as_ref().map_or("(no route)", MatchedPath::as_str)
    );
    let mut draft = Draft::new(
        Transport::Rest,
        request_id,
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
            .as_ref()
            .and_then(|route| declared(req.method(), route.as_str())),
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
    let admitted = timeout_at(deadline, admit(state, &call, &mut head, &mut draft)).await;
    let mut req = Request::from_parts(parts, body);
    let response = match admitted {
        Ok(Ok(admitted)) => {
            if call.operation.is_some() {
                req.extensions_mut().insert(admitted.caller);
                if let Some(access) = admitted.access {
                    req.extensions_mut().insert(access);
                }
            }
            timeout_at(deadline, handle(handler, limit_body(req)))
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
        state,
        draft,
        Status::Http(response.status().as_u16()),
        reason,
    )
    .await;
    response
}
