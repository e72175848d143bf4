//! The one mapping from errors to gRPC statuses. Every status carries the request id in
//! `x-request-id` metadata; none carries internals.

use crate::pipeline::{CredentialError, Refusal as PipelineRefusal};
use natterjack_core::ServiceError;
use natterjack_core::audit::{ChangesPaused, Status as AuditStatus};
use natterjack_core::rate::gcra::{Cause, Refusal};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// Why a gRPC call failed, before it becomes a [`Status`].
#[derive(Debug)]
pub enum GrpcError {
    /// From the service layer.
    Service(ServiceError),
    /// No usable client certificate (the TLS layer normally refuses these first), or an
    /// `authorization` value that is not a bearer token.
    NoCertificate(&'static str),
    /// A bearer token failed a check, and why.
    InvalidToken(&'static str),
    /// A rate-limit policy refused the call.
    RateLimited(Refusal),
    /// The watcher read too slowly or lagged behind the feed.
    SlowConsumer,
    /// Too many open watch streams for this principal.
    TooManyWatchers,
    /// A watch stream reached its maximum duration.
    StreamExpired,
    /// The server is shutting down: a watch stream ends so that its client reconnects,
    /// through its balancer, to a node that is staying.
    ShuttingDown,
    /// A unary call ran past its deadline.
    TimedOut,
    /// State changes are paused: the SIEM has not caught up (`audit.fail_closed`), or the
    /// disk is nearly full (`audit.min_free_mb`).
    ChangesPaused(ChangesPaused),
}

/// A final gRPC code as the audit trail records it.
pub(crate) fn audit_status(code: Code) -> AuditStatus {
    AuditStatus::Grpc(u16::try_from(code as i32).unwrap_or(u16::MAX))
}

/// The one mapping of the pipeline's refusals to gRPC.
impl From<PipelineRefusal> for GrpcError {
    fn from(refusal: PipelineRefusal) -> Self {
        match refusal {
            PipelineRefusal::RateLimited(r) => GrpcError::RateLimited(r),
            PipelineRefusal::BadCredential(
                CredentialError::Malformed(why) | CredentialError::Unsupported(why),
            ) => GrpcError::NoCertificate(why),
            PipelineRefusal::BadCredential(CredentialError::Forged(why)) => {
                GrpcError::Service(ServiceError::Forbidden(why))
            }
            PipelineRefusal::Unauthenticated => GrpcError::Service(ServiceError::Unauthenticated),
            PipelineRefusal::InvalidToken(reason) => GrpcError::InvalidToken(reason),
            PipelineRefusal::ChangesPaused(p) => GrpcError::ChangesPaused(p),
            PipelineRefusal::Service(e) => GrpcError::Service(e),
            PipelineRefusal::TimedOut => GrpcError::TimedOut,
        }
    }
}

impl From<ServiceError> for GrpcError {
    fn from(e: ServiceError) -> Self {
        GrpcError::Service(e)
    }
}

impl From<natterjack_core::domain::FieldError> for GrpcError {
    fn from(e: natterjack_core::domain::FieldError) -> Self {
        GrpcError::Service(ServiceError::Invalid(e))
    }
}

fn with_metadata(mut status: Status, pairs: &[(&'static str, String)]) -> Status {
    for (key, value) in pairs {
        if let Ok(v) = MetadataValue::try_from(value.as_str()) {
            status.metadata_mut().insert(*key, v);
        }
    }
    status
}

impl GrpcError {
    /// The status the client sees, with the request id attached.
    pub fn to_status(&self, request_id: &str) -> Status {
        let status = match self {
            GrpcError::Service(ServiceError::Invalid(e)) => with_metadata(
                Status::invalid_argument(format!("{}: {}", e.field(), e.reason())),
                &[("x-field", e.field().to_owned())],
            ),
            GrpcError::Service(ServiceError::Unauthenticated) => {
                Status::unauthenticated("the client certificate names no known user")
            }
            GrpcError::NoCertificate(why) => Status::unauthenticated(*why),
            GrpcError::InvalidToken(reason) => {
                Status::unauthenticated(format!("invalid bearer token: {reason}"))
            }
            GrpcError::Service(ServiceError::ProviderUnavailable(which)) => with_metadata(
                Status::unavailable(format!("{which} unavailable; retry shortly")),
                &[("retry-after", "5".to_owned())],
            ),
            GrpcError::Service(ServiceError::Forbidden(reason)) => {
                Status::permission_denied(*reason)
            }
            GrpcError::Service(ServiceError::NotFound(what)) => Status::not_found(*what),
            GrpcError::Service(ServiceError::Conflict(what)) => Status::already_exists(*what),
            GrpcError::Service(ServiceError::Busy { retry_after_secs }) => with_metadata(
                Status::unavailable("overloaded; retry shortly"),
                &[("retry-after", retry_after_secs.to_string())],
            ),
            GrpcError::Service(ServiceError::Unavailable) => with_metadata(
                Status::unavailable("temporarily unavailable; retry shortly"),
                &[("retry-after", "5".to_owned())],
            ),
            GrpcError::Service(ServiceError::Internal | ServiceError::Unreadable(_)) => {
                Status::internal(format!("internal error (request id {request_id})"))
            }
            GrpcError::RateLimited(refusal) if refusal.cause == Cause::StoreDown => with_metadata(
                Status::unavailable(format!(
                    "rate limiting is unavailable for {}; retry shortly",
                    refusal.policy
                )),
                &[("retry-after", refusal.retry_after_secs().to_string())],
            ),
            GrpcError::RateLimited(refusal) => with_metadata(
                Status::resource_exhausted(format!("rate limit {} exceeded", refusal.policy)),
                &[
                    ("retry-after", refusal.retry_after_secs().to_string()),
                    ("ratelimit-policy", refusal.policy.to_string()),
                ],
            ),
            GrpcError::SlowConsumer => Status::resource_exhausted(
                "the watcher fell too far behind and was cut off; reconnect",
            ),
            GrpcError::TooManyWatchers => {
                Status::resource_exhausted("too many open watch streams for this user")
            }
            GrpcError::StreamExpired => {
                Status::deadline_exceeded("the stream reached its maximum duration; reconnect")
            }
            GrpcError::ShuttingDown => {
                Status::unavailable("the server is shutting down; reconnect to retry")
            }
            GrpcError::TimedOut => Status::deadline_exceeded("the call took too long"),
            GrpcError::ChangesPaused(ChangesPaused::ExportBacklog) => Status::unavailable(
                "changes are paused until the audit trail reaches its collector; retry shortly",
            ),
            GrpcError::ChangesPaused(ChangesPaused::LowDisk) => with_metadata(
                Status::unavailable(
                    "changes are paused while the server is low on disk space; retry later",
                ),
                &[("retry-after", "60".to_owned())],
            ),
        };
        with_metadata(status, &[("x-request-id", request_id.to_owned())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natterjack_core::domain::FieldError;

    #[test]
    fn every_service_error_maps_to_its_documented_code_with_the_request_id() {
        let cases = [
            (
                ServiceError::Invalid(FieldError::new("name", "x")),
                Code::InvalidArgument,
            ),
            (ServiceError::Unauthenticated, Code::Unauthenticated),
            (ServiceError::Forbidden("x"), Code::PermissionDenied),
            (ServiceError::NotFound("x"), Code::NotFound),
            (ServiceError::Conflict("x"), Code::AlreadyExists),
            (
                ServiceError::Busy {
                    retry_after_secs: 1,
                },
                Code::Unavailable,
            ),
            (ServiceError::Unavailable, Code::Unavailable),
            (ServiceError::Internal, Code::Internal),
        ];
        for (error, code) in cases {
            let status = GrpcError::from(error.clone()).to_status("abc");
            assert_eq!(status.code(), code, "{error:?}");
            assert_eq!(status.metadata().get("x-request-id").unwrap(), "abc");
        }
    }

    #[test]
    fn an_internal_error_names_the_request_id_and_nothing_else() {
        let status = GrpcError::from(ServiceError::Internal).to_status("0123");
        assert_eq!(status.message(), "internal error (request id 0123)");
    }

    #[test]
    fn a_validation_error_names_the_field() {
        let status = GrpcError::from(FieldError::new("name", "too long")).to_status("r");
        assert_eq!(status.message(), "name: too long");
        assert_eq!(status.metadata().get("x-field").unwrap(), "name");
    }
}
