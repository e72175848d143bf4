//! The REST names of the API's operations: method and route template to [`Operation`].
//! Their needs are declared once, in [`crate::pipeline::operation`]; a test checks that
//! every operation of the OpenAPI document is here and nothing else is.

use crate::pipeline::Operation;
use http::Method;

/// Every REST route and method, with the operation it performs.
pub const OPERATIONS: &[(&str, &str, Operation)] = &[
    ("GET", "/health", Operation::Health),
    ("GET", "/openapi.json", Operation::OpenApi),
    ("POST", "/users", Operation::Register),
    ("GET", "/audit", Operation::ListAudit),
    ("GET", "/spaces", Operation::ListSpaces),
    ("POST", "/spaces", Operation::CreateSpace),
    ("GET", "/spaces/{id}", Operation::GetSpace),
    ("GET", "/spaces/{id}/messages", Operation::ListMessages),
    ("POST", "/spaces/{id}/messages", Operation::PostMessage),
    ("GET", "/spaces/{id}/messages/{msgId}", Operation::GetMessage),
    ("DELETE", "/spaces/{id}/messages/{msgId}", Operation::DeleteMessage),
    ("GET", "/spaces/{id}/members", Operation::ListMembers),
    ("POST", "/spaces/{id}/members", Operation::GrantPermissions),
    (
        "DELETE",
        "/spaces/{id}/members/{username}",
        Operation::RevokePermissions,
    ),
];

/// The operation of `method` on the route template `route`; `None` for a route or method
/// nobody declared (answered 404 or 405, with no identity for a handler to use).
pub fn declared(method: &Method, route: &str) -> Option<Operation> {
    OPERATIONS
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, op)| *op)
}
