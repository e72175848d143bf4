//! Extractors for step 7 (validated input): strict JSON, strict query strings, and the
//! identity and capability that earlier steps attached to the request.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::StatusCode;
use http::request::Parts;
use natterjack_core::access::SpaceAccess;
use natterjack_core::principal::{Caller, Principal};
use serde::de::DeserializeOwned;

/// A JSON body deserialised into a request type with `deny_unknown_fields`. Errors name the
/// offending field where serde knows it, and never echo values.
pub struct JsonBody<T>(pub T);

/// For serde's "unknown/missing/duplicate field" errors: the kind and the field name, the
/// name only if it looks like one of ours (ASCII letters, digits, `_`, at most 32), so an
/// attacker-chosen name is never echoed back.
fn field_problem(message: &str) -> Option<String> {
    let prefix = ["unknown field", "missing field", "duplicate field"]
        .into_iter()
        .find(|p| message.starts_with(p))?;
    // serde writes the field name between the first pair of backticks.
    let name = message.split('`').nth(1).unwrap_or("");
    let plausible = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    Some(if plausible {
        format!("{prefix} `{name}`")
    } else {
        format!("{prefix} (name not shown)")
    })
}

/// Reduces a deserialisation error to a message that names a field at most, never a value.
fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = e.inner();
    if let Some(field) = field_problem(&inner.to_string()) {
        return field;
    }
    match inner.classify() {
        serde_json::error::Category::Data => {
            let path = e.path().to_string();
            let plausible =
                path.len() <= 32 && path.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if plausible && path != "." {
                format!("field `{path}` has the wrong type")
            } else {
                "a field has the wrong type".to_owned()
            }
        }
        _ => format!(
            "malformed JSON at line {} column {}",
            inner.line(),
            inner.column()
        ),
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !super::hygiene::is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedJson("the body could not be read".to_owned())
            }
        })?;
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut json)
            .map_err(|e| ApiError::MalformedJson(describe(&e)))?;
        // Trailing data after the object is malformed too.
        json.end().map_err(|e| {
            ApiError::MalformedJson(format!(
                "malformed JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        Ok(JsonBody(value))
    }
}

/// A query string deserialised with `deny_unknown_fields`.
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(StrictQuery)
            .map_err(|e| {
                let detail = field_problem(&e.to_string())
                    .map(|f| format!("query parameter: {f}"))
                    .unwrap_or_else(|| "malformed query string".to_owned());
                ApiError::MalformedQuery(detail)
            })
    }
}

/// For routes that take no query parameters: any query string is refused, so a client's
/// misspelt or smuggled parameter is reported instead of silently ignored.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}

/// Shorthand for the strict empty query.
pub type NoQuery = StrictQuery<NoParameters>;

/// The authenticated caller; anonymous requests are refused with 401.
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::User(p)) => Ok(Authenticated(p.clone())),
            Some(Caller::Anonymous) => Err(ApiError::Unauthenticated),
            None => Err(ApiError::Internal),
        }
    }
}

/// The caller as authentication left it, anonymous included.
pub struct AnyCaller(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(AnyCaller)
            .ok_or(ApiError::Internal)
    }
}

/// The capability the pipeline granted for the operation's declared permission. A handler of
/// an operation that declared no space permission
/// fails closed with 500 instead of running unchecked.
pub struct Access(pub SpaceAccess);

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SpaceAccess>()
            .cloned()
            .map(Access)
            .ok_or_else(|| {
                tracing::error!("space handler reached without a space permission declared");
                ApiError::Internal
            })
    }
}
