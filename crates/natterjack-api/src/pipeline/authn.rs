//! Authentication: HTTP Basic (RFC 7617) credentials become a `Caller`.

use super::audit::AuditDraft;
use super::rate_limit::client_ip::ClientIp;
use super::rate_limit::gcra::Refusal;
use super::rate_limit::limited_by;
use crate::AppState;
use crate::rest::error::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, header};
use natterjack_core::ServiceError;
use natterjack_core::auth::{Login, Turn};
use natterjack_core::domain::Username;
use natterjack_core::principal::Caller;
use secrecy::SecretString;
use std::net::{IpAddr, Ipv4Addr};
use zeroize::Zeroizing;

/// The challenge sent with every 401.
pub const CHALLENGE: &str = r#"Basic realm="natterjack", charset="UTF-8""#;

/// Longest `Authorization` header accepted; a 30-byte name and a 256-byte password fit in
/// well under this after base64.
const MAX_AUTHORIZATION_BYTES: usize = 1024;

/// Credentials taken from a Basic header. The password is secret from the moment it is
/// decoded; the decoded buffer is zeroised on drop.
pub struct BasicCredentials {
    /// The user-id part, before the first colon.
    pub username: String,
    /// The password part.
    pub password: SecretString,
}

/// Why an `Authorization` header could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum CredentialsError {
    /// Not valid Basic syntax: a 400, since no credentials were actually presented.
    Malformed,
    /// Another scheme: answered with a 401 and the Basic challenge.
    UnsupportedScheme,
}

/// Parses the `Authorization` header: `None` when absent.
pub fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<BasicCredentials>, CredentialsError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() || value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(CredentialsError::Malformed);
    }
    let value = value.to_str().map_err(|_| CredentialsError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(CredentialsError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(CredentialsError::UnsupportedScheme);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(CredentialsError::Malformed);
    }
    let decoded = Zeroizing::new(
        STANDARD
            .decode(token)
            .map_err(|_| CredentialsError::Malformed)?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| CredentialsError::Malformed)?;
    let (username, password) = text.split_once(':').ok_or(CredentialsError::Malformed)?;
    if username.chars().any(char::is_control) || password.chars().any(char::is_control) {
        return Err(CredentialsError::Malformed);
    }
    Ok(Some(BasicCredentials {
        username: username.to_owned(),
        password: SecretString::from(password),
    }))
}

/// Why a presented pair of credentials did not authenticate.
enum Refused {
    /// A wrong username or password (counted against the login budgets).
    Wrong,
    /// A login budget refused the guess before any hashing (429).
    Limited(Refusal),
    /// Anything else: the hasher is saturated (503), storage failed.
    Service(ServiceError),
}

/// Verifies Basic credentials, counting each guess that needs an Argon2id verification
/// against the login budgets (`failed-logins`, and `account-guesses` from addresses that
/// have not logged in as this user recently) before the hashing starts, and giving it back
/// unless the password turned out wrong. A verification-cache hit takes nothing from the
/// budgets; a password refused without hashing (empty or oversized) counts as a wrong
/// guess, as any other. A success makes the address known to the account.
async fn verify(
    state: &AppState,
    username: &str,
    password: &SecretString,
    ip: IpAddr,
) -> Result<natterjack_core::principal::Principal, Refused> {
    let limits = &state.limits;
    let pending = match state.service.begin_login(username, password).await {
        Ok(Login::Verified(principal)) => {
            limits.login_succeeded(username, ip);
            return Ok(principal);
        }
        Ok(Login::NeedsHashing(pending)) => pending,
        Err(ServiceError::Unauthenticated) => {
            // Refused or not, the answer stays 401: the guess is counted either way.
            let _ = limits.take_guess(username, ip);
            return Err(Refused::Wrong);
        }
        Err(e) => return Err(Refused::Service(e)),
    };
    // Only a verification that will hash counts: one that waited for another of the very
    // same credentials and found it succeeded takes nothing from the budget.
    let pending = match pending.wait_turn().await {
        Turn::Verified(principal) => {
            limits.login_succeeded(username, ip);
            return Ok(principal);
        }
        Turn::Hash(pending) => pending,
    };
    let guess = limits.take_guess(username, ip).map_err(Refused::Limited)?;
    match pending.verify().await {
        Ok(principal) => {
            limits.give_back_guess(username, ip, guess);
            limits.login_succeeded(username, ip);
            Ok(principal)
        }
        Err(ServiceError::Unauthenticated) => Err(Refused::Wrong),
        Err(e) => {
            limits.give_back_guess(username, ip, guess);
            Err(Refused::Service(e))
        }
    }
}

/// Turns the request's credentials into a `Caller` extension. Absent → anonymous (routes
/// that need a user answer 401 later); malformed → 400; wrong → 401; hasher saturated → 503.
/// Too many failed logins for this username from this address, or for this username from
/// addresses it has not logged in from → 429 before any hashing; an authenticated user over
/// their own quota → 429.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = match basic_credentials(req.headers()) {
        Ok(None) => Caller::Anonymous,
        Ok(Some(credentials)) => {
            if let Some(draft) = req.extensions().get::<AuditDraft>() {
                draft.credentials_presented();
            }
            let ip = req
                .extensions()
                .get::<ClientIp>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
            let limits = &state.limits;
            // A login refused by its budgets is shown to the anomaly monitor under the
            // account it targeted, as a wrong password is.
            let claim = |req: &Request| {
                if let (Some(draft), Ok(name)) = (
                    req.extensions().get::<AuditDraft>(),
                    Username::parse(&credentials.username),
                ) {
                    draft.claimed(name.as_str());
                }
            };
            let limited = |req: &Request, refusal: Refusal, account: &str| {
                if let Some(draft) = req.extensions().get::<AuditDraft>() {
                    draft.limited_by(limited_by(&refusal, ip, Some(account)));
                }
                ApiError::RateLimited(refusal).into_response()
            };
            if let Err(refusal) = limits.login_allowed(&credentials.username, ip) {
                claim(&req);
                return limited(&req, refusal, &credentials.username);
            }
            match verify(&state, &credentials.username, &credentials.password, ip).await {
                Err(Refused::Limited(refusal)) => {
                    claim(&req);
                    return limited(&req, refusal, &credentials.username);
                }
                Err(Refused::Service(e)) => return ApiError::from(e).into_response(),
                Ok(principal) => {
                    if let Some(draft) = req.extensions().get::<AuditDraft>() {
                        draft.principal(principal.username().as_str());
                    }
                    match limits.admit_principal(principal.id()) {
                        Ok(()) => Caller::User(principal),
                        Err(refusal) => {
                            return limited(&req, refusal, principal.username().as_str());
                        }
                    }
                }
                Err(Refused::Wrong) => {
                    claim(&req);
                    crate::metrics::auth_failure("rest", "wrong username or password");
                    return ApiError::Unauthenticated.into_response();
                }
            }
        }
        Err(CredentialsError::Malformed) => {
            crate::metrics::auth_failure("rest", "malformed Authorization header");
            return ApiError::MalformedAuthorization.into_response();
        }
        Err(CredentialsError::UnsupportedScheme) => {
            crate::metrics::auth_failure("rest", "unsupported scheme");
            return ApiError::Unauthenticated.into_response();
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use secrecy::ExposeSecret;

    fn header_of(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn a_well_formed_basic_header_yields_the_name_and_a_password_that_may_contain_colons() {
        let token = STANDARD.encode("alice:pa:ss wörd");
        let parsed = basic_credentials(&header_of(&format!("bAsIc {token}")));
        let creds = parsed
            .ok()
            .flatten()
            .map(|c| (c.username, c.password.expose_secret().to_owned()));
        assert_eq!(creds, Some(("alice".to_owned(), "pa:ss wörd".to_owned())));
    }

    #[test]
    fn malformed_basic_headers_are_refused() {
        for bad in [
            "Basic".to_owned(),
            "Basic ".to_owned(),
            "Basic !!!notbase64".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon")),
            format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x'])),
            format!("Basic {}", STANDARD.encode("al\u{0}ice:pw")),
            format!("Basic {} extra", STANDARD.encode("a:b")),
            format!("Basic {}", "A".repeat(2000)),
        ] {
            assert_eq!(
                basic_credentials(&header_of(&bad)).err(),
                Some(CredentialsError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_schemes_are_unsupported_rather_than_malformed() {
        assert_eq!(
            basic_credentials(&header_of("Bearer abc")).err(),
            Some(CredentialsError::UnsupportedScheme)
        );
    }
}
