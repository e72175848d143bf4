//! The OpenAPI 3.1 description of the REST API, generated from the handlers' annotations.
//!
//! Served at `GET /openapi.json` and committed as `docs/openapi.json`; a test fails when
//! the two differ. Every operation lists the error statuses the pipeline can produce, each
//! an RFC 9457 problem, so a client (or schemathesis) can check every response against it.

use super::handlers;
use crate::problem::{PROBLEM_JSON, Problem};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Natterjack",
        description = "A secure-by-default API: spaces, permissions (r, w, d) and messages. Every request passes \
                       rate limiting, authentication (HTTP Basic, or an OpenID Connect bearer token), audit and \
                       access control; errors are RFC 9457 \
                       problems with a request id.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
        version = "0.1.0"
    ),
    paths(
        handlers::health::health,
        handlers::users::register,
        handlers::spaces::create,
        handlers::spaces::list,
        handlers::spaces::show,
        handlers::messages::post,
        handlers::messages::list,
        handlers::messages::show,
        handlers::messages::delete,
        handlers::members::list,
        handlers::members::grant,
        handlers::members::revoke,
        handlers::audit::list,
    ),
    components(schemas(Problem)),
    modifiers(&SecurityAndErrors)
)]
pub struct ApiDoc;

/// Adds the Basic and Bearer security schemes and the pipeline's error responses to every
/// operation.
struct SecurityAndErrors;

fn text_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(description))
        .build()
}

fn problem(
    description: &str,
    headers: &[(&str, &str)],
) -> RefOr<utoipa::openapi::response::Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content);
    for (name, text) in headers {
        builder = builder.header(*name, text_header(text));
    }
    RefOr::T(builder.build())
}

/// The statuses any operation can answer with, because of the pipeline around it.
fn pipeline_errors() -> Vec<(&'static str, RefOr<utoipa::openapi::response::Response>)> {
    vec![
        (
            "400",
            problem(
                "Malformed input, query or Authorization header; the problem names the field",
                &[],
            ),
        ),
        (
            "401",
            problem(
                "Missing or wrong credentials, or a bearer token that failed a check",
                &[(
                    "www-authenticate",
                    r#"Basic realm="natterjack", charset="UTF-8"; for a bearer token: Bearer realm="natterjack", error="invalid_token", error_description="<reason>""#,
                )],
            ),
        ),
        ("403", problem("Authenticated but not allowed", &[])),
        (
            "404",
            problem("Not found (within what the caller may see)", &[]),
        ),
        ("408", problem("The request took too long", &[])),
        ("409", problem("Already exists", &[])),
        ("413", problem("Body over 16 KiB", &[])),
        (
            "431",
            problem(
                "More than 100 header fields, or more than 16 KiB of them",
                &[],
            ),
        ),
        (
            "415",
            problem("Body without Content-Type: application/json", &[]),
        ),
        (
            "429",
            problem(
                "Rate limited",
                &[
                    ("retry-after", "Seconds to wait"),
                    ("ratelimit", "Remaining quota of the refusing policy"),
                    ("ratelimit-policy", "The refusing policy's quota and window"),
                ],
            ),
        ),
        (
            "500",
            problem(
                "Internal error; the request id finds it in the server log",
                &[],
            ),
        ),
        (
            "503",
            problem(
                "Overloaded, or storage, the directory or an OpenID issuer unavailable",
                &[("retry-after", "Seconds to wait")],
            ),
        ),
    ]
}

/// An OpenAPI link: from a response of one operation to another operation, with the
/// runtime expressions that fill the target's parameters.
struct LinkSpec {
    from: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    /// One field of the target's request body, taken from the response (merged into a
    /// body the client completes).
    body: Option<(&'static str, &'static str)>,
}

const SPACE: &[(&str, &str)] = &[("id", "$response.body#/id")];
const MESSAGE: &[(&str, &str)] = &[("id", "$request.path.id"), ("msgId", "$response.body#/id")];
const MEMBER: &[(&str, &str)] = &[
    ("id", "$request.path.id"),
    ("username", "$response.body#/username"),
];

/// Links from each created resource (a 201) to the operations on it, so a client (and
/// schemathesis's stateful phase) can follow create → read → delete.
const LINKS: &[LinkSpec] = &[
    LinkSpec {
        from: "createSpace",
        to: "getSpace",
        parameters: SPACE,
        body: None,
    },
    LinkSpec {
        from: "createSpace",
        to: "listMessages",
        parameters: SPACE,
        body: None,
    },
    LinkSpec {
        from: "createSpace",
        to: "postMessage",
        parameters: SPACE,
        body: None,
    },
    LinkSpec {
        from: "createSpace",
        to: "listMembers",
        parameters: SPACE,
        body: None,
    },
    LinkSpec {
        from: "createSpace",
        to: "grantPermissions",
        parameters: SPACE,
        // Grants on a new space go to its owner, who exists: a link cannot name another
        // existing user, and a grant to a name that is no user is a 404.
        body: Some(("username", "$response.body#/owner")),
    },
    LinkSpec {
        from: "postMessage",
        to: "getMessage",
        parameters: MESSAGE,
        body: None,
    },
    LinkSpec {
        from: "postMessage",
        to: "deleteMessage",
        parameters: MESSAGE,
        body: None,
    },
    LinkSpec {
        from: "grantPermissions",
        to: "revokePermissions",
        parameters: MEMBER,
        body: None,
    },
];

/// Every operation of the document, for the modifications below.
fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

fn add_links(openapi: &mut utoipa::openapi::OpenApi) {
    for operation in operations(openapi) {
        let Some(id) = operation.operation_id.clone() else {
            continue;
        };
        let Some(RefOr::T(created)) = operation.responses.responses.get_mut("201") else {
            continue;
        };
        for spec in LINKS.iter().filter(|l| l.from == id) {
            let link = spec
                .parameters
                .iter()
                .fold(
                    LinkBuilder::new().operation_id(spec.to),
                    |b, (name, value)| b.parameter(*name, *value),
                )
                .request_body(
                    spec.body
                        .map(|(field, value)| serde_json::json!({ field: value })),
                )
                .build();
            created.links.insert(spec.to.to_owned(), RefOr::T(link));
        }
    }
}

impl Modify for SecurityAndErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        add_links(openapi);
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "basic",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
            );
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "An OpenID Connect access token (RFC 9068) of a configured issuer",
                        ))
                        .build(),
                ),
            );
        }
        for operation in operations(openapi) {
            for (status, response) in pipeline_errors() {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert(response);
            }
        }
    }
}

/// The document as pretty JSON, exactly as served and committed.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of this API, without authentication.
pub(crate) async fn serve(_: super::extract::NoQuery) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(http::header::CONTENT_TYPE, "application/json")], json()).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_openapi_document_matches_the_code() {
        let committed = include_str!("../../../../docs/openapi.json");
        assert!(
            committed.trim_end() == super::json().trim_end(),
            "docs/openapi.json is stale: regenerate it with `cargo run -p natterjack -- openapi > docs/openapi.json`"
        );
    }

    /// The spellings an `AuditRecordView` property's pattern allows, read from the document.
    fn allowed_spellings(property: &str) -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        let pattern =
            doc["components"]["schemas"]["AuditRecordView"]["properties"][property]["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("{property} has no pattern"));
        let inner = pattern
            .strip_prefix("^(")
            .and_then(|p| p.strip_suffix(")$"))
            .unwrap();
        inner.split('|').map(str::to_owned).collect()
    }

    #[test]
    fn the_audit_view_patterns_allow_every_value_the_audit_log_can_hold() {
        use natterjack_core::audit::{AuthMethod, Decision, Transport};
        let checks: [(&str, Vec<&str>); 3] = [
            (
                "auth_method",
                AuthMethod::ALL.iter().map(|v| v.as_str()).collect(),
            ),
            (
                "transport",
                Transport::ALL.iter().map(|v| v.as_str()).collect(),
            ),
            (
                "decision",
                Decision::ALL.iter().map(|v| v.as_str()).collect(),
            ),
        ];
        for (property, values) in checks {
            let mut allowed = allowed_spellings(property);
            let mut values: Vec<String> = values.into_iter().map(str::to_owned).collect();
            allowed.sort();
            values.sort();
            assert_eq!(
                allowed, values,
                "the pattern of {property} differs from its vocabulary"
            );
        }
    }
}
