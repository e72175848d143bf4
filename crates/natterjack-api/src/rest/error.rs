//! The one mapping from errors to HTTP responses for the REST transport.

use crate::pipeline::{CredentialError, Refusal as PipelineRefusal};
use crate::problem::Problem;
use crate::schemes::basic::CHALLENGE;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use natterjack_core::ServiceError;
use natterjack_core::audit::ChangesPaused;
use natterjack_core::domain::FieldError;
use natterjack_core::rate::gcra::{Cause, Refusal};

/// Why a request was refused, attached to error responses for the audit record.
#[derive(Debug, Clone)]
pub struct AuditReason(pub String);

/// Everything a REST request can fail with. Service errors keep their meaning; the rest are
/// transport-level refusals made by the pipeline or the extractors.
#[derive(Debug)]
pub enum ApiError {
    /// An error from the service layer.
    Service(ServiceError),
    /// The `Authorization` header is not valid Basic syntax.
    MalformedAuthorization,
    /// Credentials are missing or wrong.
    Unauthenticated,
    /// A bearer token failed a check (RFC 6750 `invalid_token`), and why.
    InvalidToken(&'static str),
    /// A body without a JSON content type.
    UnsupportedMediaType,
    /// A body over the size limit.
    PayloadTooLarge,
    /// More header fields, or more header bytes, than the pipeline accepts.
    HeadersTooLarge,
    /// No `Host`, two, or an invalid one (RFC 9112 §3.2).
    InvalidHost,
    /// A body that is not the JSON object this operation takes.
    MalformedJson(String),
    /// A query string with unknown or malformed parameters.
    MalformedQuery(String),
    /// Path segments that could not be decoded.
    InvalidPath,
    /// No route for this path.
    NoSuchRoute,
    /// A bug: a handler ran without what the pipeline should have given it.
    Internal,
    /// A rate-limit policy refused the request.
    RateLimited(Refusal),
    /// The readiness probe: the database does not answer.
    NotReady,
    /// The readiness probe: the node is shutting down (draining), so a load balancer
    /// should send requests elsewhere while this one finishes what it serves.
    ShuttingDown,
    /// State changes are paused: the SIEM has not caught up (`audit.fail_closed`), or the
    /// disk is nearly full (`audit.min_free_mb`).
    ChangesPaused(ChangesPaused),
    /// The request ran past its deadline.
    TimedOut,
}

/// The one mapping of the pipeline's refusals to REST.
impl From<PipelineRefusal> for ApiError {
    fn from(refusal: PipelineRefusal) -> Self {
        match refusal {
            PipelineRefusal::RateLimited(r) => ApiError::RateLimited(r),
            PipelineRefusal::BadCredential(CredentialError::Malformed(_)) => {
                ApiError::MalformedAuthorization
            }
            PipelineRefusal::BadCredential(CredentialError::Unsupported(_))
            | PipelineRefusal::Unauthenticated => ApiError::Unauthenticated,
            PipelineRefusal::BadCredential(CredentialError::Forged(why)) => {
                ApiError::Service(ServiceError::Forbidden(why))
            }
            PipelineRefusal::InvalidToken(reason) => ApiError::InvalidToken(reason),
            PipelineRefusal::ChangesPaused(p) => ApiError::ChangesPaused(p),
            PipelineRefusal::Service(e) => ApiError::Service(e),
            PipelineRefusal::TimedOut => ApiError::TimedOut,
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError::Service(e)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Service(ServiceError::Invalid(e))
    }
}

fn with_field(e: &FieldError) -> Problem {
    let mut p = Problem::new(
        StatusCode::BAD_REQUEST,
        Some(format!("{}: {}", e.field(), e.reason())),
    );
    p.field = Some(e.field());
    p
}

fn unauthenticated() -> Response {
    let mut r = Problem::new(
        StatusCode::UNAUTHORIZED,
        Some("valid credentials are required".into()),
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    r
}

/// 401 for a bearer token that failed a check: the Bearer challenge with
/// `error="invalid_token"` (RFC 6750 §3.1) and the reason, which names only what was wrong
/// with the client's own token.
fn invalid_token(reason: &'static str) -> Response {
    let mut r = Problem::new(
        StatusCode::UNAUTHORIZED,
        Some(format!("the bearer token is not valid: {reason}")),
    )
    .into_response();
    let challenge = format!(
        r#"Bearer realm="natterjack", error="invalid_token", error_description="{reason}""#
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    r
}

fn retry_after(mut r: Response, secs: u32) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// 429 with `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` fields
/// (draft-ietf-httpapi-ratelimit-headers): the refusing policy's quota `q` per window `w`,
/// nothing remaining (`r=0`), and `t` seconds until a retry can succeed. A policy that
/// fails closed while its shared store is down answers 503 instead: the client spent
/// nothing, and its budget cannot be told.
fn rate_limited(refusal: &Refusal) -> Response {
    let secs = refusal.retry_after_secs();
    if refusal.cause == Cause::StoreDown {
        let detail = format!(
            "rate limiting is unavailable for `{}`; retry after {secs} s",
            refusal.policy
        );
        let r = Problem::new(StatusCode::SERVICE_UNAVAILABLE, Some(detail)).into_response();
        return retry_after(r, u32::try_from(secs).unwrap_or(u32::MAX));
    }
    let detail = format!(
        "rate limit `{}` exceeded; retry after {secs} s",
        refusal.policy
    );
    let mut r = Problem::new(StatusCode::TOO_MANY_REQUESTS, Some(detail)).into_response();
    let policy = format!(
        "\"{}\";q={};w={}",
        refusal.policy,
        refusal.quota.burst,
        refusal.quota.window_secs()
    );
    let state = format!("\"{}\";r=0;t={secs}", refusal.policy);
    let headers = r.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    r
}

impl ApiError {
    /// The reason recorded in the audit log: the same safe text the client sees.
    fn audit_reason(&self) -> String {
        match self {
            ApiError::Service(ServiceError::Invalid(e)) => {
                format!("invalid {}: {}", e.field(), e.reason())
            }
            ApiError::Service(ServiceError::Unauthenticated) | ApiError::Unauthenticated => {
                "missing or wrong credentials".to_owned()
            }
            ApiError::Service(ServiceError::Forbidden(r)) => (*r).to_owned(),
            ApiError::Service(ServiceError::NotFound(r)) => format!("not found: {r}"),
            ApiError::Service(ServiceError::Conflict(r)) => format!("conflict: {r}"),
            ApiError::Service(ServiceError::Busy { .. }) => "password hashing saturated".to_owned(),
            ApiError::Service(ServiceError::Unavailable) => "storage unavailable".to_owned(),
            ApiError::Service(ServiceError::ProviderUnavailable(which)) => {
                format!("{which} unavailable")
            }
            ApiError::InvalidToken(reason) => format!("invalid bearer token: {reason}"),
            ApiError::Service(ServiceError::Internal) | ApiError::Internal => {
                "internal error".to_owned()
            }
            ApiError::Service(ServiceError::Unreadable(detail)) => {
                format!("sealed value unreadable: {detail}")
            }
            ApiError::MalformedAuthorization => "malformed Authorization header".to_owned(),
            ApiError::UnsupportedMediaType => "body is not application/json".to_owned(),
            ApiError::PayloadTooLarge => "body over the size limit".to_owned(),
            ApiError::HeadersTooLarge => "header fields over the limit".to_owned(),
            ApiError::InvalidHost => "missing, repeated or invalid Host header".to_owned(),
            ApiError::MalformedJson(d) | ApiError::MalformedQuery(d) => d.clone(),
            ApiError::InvalidPath => "undecodable path".to_owned(),
            ApiError::NoSuchRoute => "no such route".to_owned(),
            ApiError::RateLimited(r) if r.cause == Cause::StoreDown => format!(
                "rate limit {} unavailable: the shared store does not answer (fails closed)",
                r.policy
            ),
            ApiError::RateLimited(r) => format!("rate limit {} exceeded", r.policy),
            ApiError::NotReady => "not ready: storage unavailable".to_owned(),
            ApiError::ShuttingDown => "not ready: shutting down".to_owned(),
            ApiError::TimedOut => "request took too long".to_owned(),
            ApiError::ChangesPaused(ChangesPaused::ExportBacklog) => {
                "audit export backlog over audit.max_backlog (fail_closed)".to_owned()
            }
            ApiError::ChangesPaused(ChangesPaused::LowDisk) => {
                "free disk space below audit.min_free_mb".to_owned()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = AuditReason(self.audit_reason());
        let mut response = self.problem_response();
        response.extensions_mut().insert(reason);
        response
    }
}

impl ApiError {
    fn problem_response(self) -> Response {
        let plain = |status: StatusCode, detail: &str| {
            Problem::new(status, Some(detail.to_owned())).into_response()
        };
        match self {
            ApiError::Service(ServiceError::Invalid(e)) => with_field(&e).into_response(),
            ApiError::Service(ServiceError::Unauthenticated) | ApiError::Unauthenticated => {
                unauthenticated()
            }
            ApiError::Service(ServiceError::Forbidden(reason)) => {
                plain(StatusCode::FORBIDDEN, reason)
            }
            ApiError::Service(ServiceError::NotFound(what)) => plain(StatusCode::NOT_FOUND, what),
            ApiError::Service(ServiceError::Conflict(what)) => plain(StatusCode::CONFLICT, what),
            ApiError::Service(ServiceError::Busy { retry_after_secs }) => retry_after(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many logins in progress; retry shortly",
                ),
                retry_after_secs,
            ),
            ApiError::InvalidToken(reason) => invalid_token(reason),
            ApiError::Service(ServiceError::ProviderUnavailable(_)) => retry_after(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "credentials cannot be checked right now; retry shortly",
                ),
                5,
            ),
            ApiError::Service(ServiceError::Unavailable) => retry_after(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily unavailable; retry shortly",
                ),
                5,
            ),
            ApiError::Service(ServiceError::Internal | ServiceError::Unreadable(_))
            | ApiError::Internal => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, None).into_response()
            }
            ApiError::MalformedAuthorization => plain(
                StatusCode::BAD_REQUEST,
                "the Authorization header is not valid HTTP Basic",
            ),
            ApiError::UnsupportedMediaType => plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "request bodies must be application/json (UTF-8)",
            ),
            ApiError::PayloadTooLarge => plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request bodies are limited to 16 KiB",
            ),
            ApiError::HeadersTooLarge => plain(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "requests are limited to 100 header fields and 16 KiB of them",
            ),
            ApiError::InvalidHost => plain(
                StatusCode::BAD_REQUEST,
                "a request needs exactly one valid Host header",
            ),
            ApiError::MalformedJson(detail) | ApiError::MalformedQuery(detail) => {
                plain(StatusCode::BAD_REQUEST, &detail)
            }
            ApiError::InvalidPath => {
                plain(StatusCode::BAD_REQUEST, "the path could not be decoded")
            }
            ApiError::NoSuchRoute => plain(StatusCode::NOT_FOUND, "no such resource"),
            ApiError::RateLimited(refusal) => rate_limited(&refusal),
            ApiError::TimedOut => Problem::new(StatusCode::REQUEST_TIMEOUT, None).into_response(),
            ApiError::NotReady => retry_after(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the server cannot reach its database; retry shortly",
                ),
                5,
            ),
            ApiError::ShuttingDown => retry_after(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the server is shutting down",
                ),
                5,
            ),
            ApiError::ChangesPaused(ChangesPaused::ExportBacklog) => retry_after(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "changes are paused until the audit trail reaches its collector; retry shortly",
                ),
                5,
            ),
            ApiError::ChangesPaused(ChangesPaused::LowDisk) => retry_after(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "changes are paused while the server is low on disk space; retry later",
                ),
                60,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_error_maps_to_its_documented_status() {
        let cases = [
            (ServiceError::Invalid(FieldError::new("name", "x")), 400),
            (ServiceError::Unauthenticated, 401),
            (ServiceError::Forbidden("x"), 403),
            (ServiceError::NotFound("x"), 404),
            (ServiceError::Conflict("x"), 409),
            (
                ServiceError::Busy {
                    retry_after_secs: 1,
                },
                503,
            ),
            (ServiceError::Unavailable, 503),
            (ServiceError::Internal, 500),
        ];
        for (error, status) in cases {
            let response = ApiError::from(error.clone()).into_response();
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
        }
    }

    #[test]
    fn unauthenticated_carries_the_basic_challenge_and_busy_a_retry_after() {
        let r = ApiError::Unauthenticated.into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], CHALLENGE);
        let r = ApiError::from(ServiceError::Busy {
            retry_after_secs: 1,
        })
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
