//! The console's one error mapping: every refusal of the pipeline and every failure of a
//! page becomes an HTML page with its status, and the reason the audit record gets. A
//! page that needs a session and has none sends the browser to the login form instead.

use crate::pages::render::{ErrorPage, render};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderValue, StatusCode, header};
use natterjack_api::pipeline::{CredentialError, Refusal};
use natterjack_core::ServiceError;
use natterjack_core::audit::ChangesPaused;
use natterjack_core::rate::gcra::Cause;

/// The reason a response gives the audit record (never anything secret).
#[derive(Debug, Clone)]
pub struct AuditReason(pub String);

/// The status the audit record gets when the browser is answered with another: a request
/// refused for want of a (valid) session is sent to the login form with a 303, but it was
/// refused, and the trail, the anomaly monitor and the SIEM must count it as a 401 denial.
#[derive(Debug, Clone, Copy)]
pub struct AuditStatus(pub StatusCode);
/// Marks the answer to a request that needed a session and had none that is valid: the
/// adapter clears the session cookie if the request carried one (a stale or revoked token),
/// and only then. A request without the cookie may well come from a browser that holds a
/// good one and did not send it (a link followed from another site: the cookie is
/// `SameSite=Strict`); clearing it there would sign the user out at any other site's whim.
#[derive(Debug, Clone, Copy)]
pub struct NoSession;

/// Why a console request was not served.
#[derive(Debug)]
pub enum ConsoleError {
    /// A step of the pipeline refused.
    Refused(Refusal),
    /// The service refused or failed.
    Service(ServiceError),
    /// A POST that did not come from the console's own origin.
    CrossSite,
    /// A POST whose body is not a form.
    NotAForm,
    /// A form over the size limit or unreadable.
    BadForm(&'static str),
    /// A password login that failed: the form again, with the one answer for any mistake,
    /// and the sign-on buttons the console offers (a user who mistyped may sign on instead).
    WrongLogin {
        /// Whether "Sign in with SAML" is offered.
        saml: bool,
        /// Whether "Sign in with OpenID Connect" is offered.
        oidc: bool,
    },
    /// A single sign-on that failed.
    SignOn(crate::SignOnRefusal),
    /// No such page.
    NotFound,
}

impl From<Refusal> for ConsoleError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Service(e) => ConsoleError::Service(e),
            other => ConsoleError::Refused(other),
        }
    }
}

impl From<ServiceError> for ConsoleError {
    fn from(e: ServiceError) -> Self {
        ConsoleError::Service(e)
    }
}

impl From<natterjack_core::domain::FieldError> for ConsoleError {
    fn from(e: natterjack_core::domain::FieldError) -> Self {
        ConsoleError::Service(ServiceError::Invalid(e))
    }
}

fn service_status(e: &ServiceError) -> (StatusCode, String) {
    match e {
        ServiceError::Invalid(field) => (StatusCode::BAD_REQUEST, field.to_string()),
        ServiceError::Unauthenticated => (StatusCode::UNAUTHORIZED, "please log in".into()),
        ServiceError::Forbidden(why) => (StatusCode::FORBIDDEN, (*why).to_owned()),
        ServiceError::NotFound(what) => (StatusCode::NOT_FOUND, format!("no such {what}")),
        ServiceError::Conflict(why) => (StatusCode::CONFLICT, (*why).to_owned()),
        ServiceError::Busy { .. } | ServiceError::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is busy; try again shortly".into(),
        ),
        ServiceError::ProviderUnavailable(which) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the {which} cannot be reached; try again shortly"),
        ),
        ServiceError::Internal | ServiceError::Unreadable(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "something went wrong on our side".into(),
        ),
    }
}

impl ConsoleError {
    /// [`ConsoleError::WrongLogin`] with the sign-on buttons `console` offers.
    pub fn wrong_login(console: &crate::Console) -> Self {
        ConsoleError::WrongLogin {
            saml: console.saml.is_some(),
            oidc: console.oidc.is_some(),
        }
    }

    /// Status, the text shown, and the text audited.
    fn describe(&self) -> (StatusCode, String, String) {
        let same = |status, text: String| (status, text.clone(), text);
        match self {
            ConsoleError::Service(ServiceError::Unreadable(detail)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "something went wrong on our side".into(),
                format!("sealed value unreadable: {detail}"),
            ),
            ConsoleError::Service(e) => {
                let (status, text) = service_status(e);
                same(status, text)
            }
            ConsoleError::Refused(Refusal::RateLimited(r)) if r.cause == Cause::StoreDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests are being refused for safety; try again shortly".into(),
                format!(
                    "rate limit {} unavailable: the shared store does not answer (fails closed)",
                    r.policy
                ),
            ),
            ConsoleError::Refused(Refusal::RateLimited(r)) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many requests; try again in {} s", r.retry_after_secs()),
                format!("rate limit {} exceeded", r.policy),
            ),
            ConsoleError::Refused(Refusal::BadCredential(CredentialError::Forged(why))) => {
                same(StatusCode::FORBIDDEN, (*why).to_owned())
            }
            ConsoleError::Refused(Refusal::BadCredential(e)) => {
                same(StatusCode::BAD_REQUEST, e.reason().to_owned())
            }
            ConsoleError::Refused(Refusal::Unauthenticated) => {
                same(StatusCode::UNAUTHORIZED, "please log in".into())
            }
            ConsoleError::Refused(Refusal::InvalidToken(why)) => {
                same(StatusCode::UNAUTHORIZED, (*why).to_owned())
            }
            ConsoleError::Refused(Refusal::ChangesPaused(ChangesPaused::ExportBacklog)) => same(
                StatusCode::SERVICE_UNAVAILABLE,
                "changes are paused while the audit export catches up".into(),
            ),
            ConsoleError::Refused(Refusal::ChangesPaused(ChangesPaused::LowDisk)) => same(
                StatusCode::SERVICE_UNAVAILABLE,
                "changes are paused: the server is low on disk space".into(),
            ),
            ConsoleError::Refused(Refusal::Service(e)) => {
                let (status, text) = service_status(e);
                same(status, text)
            }
            ConsoleError::Refused(Refusal::TimedOut) => same(
                StatusCode::REQUEST_TIMEOUT,
                "the request took too long".into(),
            ),
            ConsoleError::CrossSite => same(
                StatusCode::FORBIDDEN,
                "a form from another site is refused".into(),
            ),
            ConsoleError::NotAForm => same(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body is not a form".into(),
            ),
            ConsoleError::BadForm(why) => same(StatusCode::BAD_REQUEST, (*why).to_owned()),
            ConsoleError::WrongLogin { .. } => same(
                StatusCode::UNAUTHORIZED,
                "Wrong username or password".into(),
            ),
            ConsoleError::SignOn(crate::SignOnRefusal::Refused(why)) => (
                StatusCode::FORBIDDEN,
                "the sign-on was refused".into(),
                format!("sign-on refused: {why}"),
            ),
            ConsoleError::SignOn(crate::SignOnRefusal::Unavailable(why)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the identity provider cannot be reached; try again shortly".into(),
                format!("sign-on unavailable: {why}"),
            ),
            ConsoleError::NotFound => same(StatusCode::NOT_FOUND, "no such page".into()),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, shown, audited) = self.describe();
        let mut response = if matches!(
            self,
            ConsoleError::Refused(Refusal::Unauthenticated)
                | ConsoleError::Service(ServiceError::Unauthenticated)
        ) {
            // No session, or one that ended: log in again. The adapter makes the browser
            // forget the cookie, if it sent one.
            let mut r = Redirect::to("/console/login").into_response();
            r.extensions_mut().insert(AuditStatus(status));
            r.extensions_mut().insert(NoSession);
            r
        } else if let ConsoleError::WrongLogin { saml, oidc } = self {
            let page = crate::pages::login::form(None, Some(shown), saml, oidc);
            (status, page).into_response()
        } else {
            (status, render(&ErrorPage::new(status, shown))).into_response()
        };
        if let ConsoleError::Refused(Refusal::RateLimited(r)) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(r.retry_after_secs()));
        }
        response.extensions_mut().insert(AuditReason(audited));
        response
    }
}
