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
    (
        "GET",
        "/spaces/{id}/messages/{msgId}",
        Operation::GetMessage,
    ),
    (
        "DELETE",
        "/spaces/{id}/messages/{msgId}",
        Operation::DeleteMessage,
    ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Need;

    /// Every (method, path) of the OpenAPI document.
    fn documented() -> Vec<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(&super::super::openapi::json()).unwrap();
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                found.push((method.to_uppercase(), path.clone()));
            }
        }
        found
    }

    #[test]
    fn every_documented_route_declares_its_operation_and_every_declaration_is_documented() {
        let documented = documented();
        assert!(documented.len() >= 13, "{documented:?}");
        for (method, path) in &documented {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert!(
                declared(&method, path).is_some(),
                "{method} {path} declares no operation: its handler would get no identity"
            );
        }
        for (method, path, _) in OPERATIONS {
            let is_documented = documented.iter().any(|(m, p)| m == method && p == path);
            assert!(
                is_documented || *path == "/openapi.json",
                "{method} {path} is declared but not documented"
            );
        }
    }

    #[test]
    fn every_route_under_a_space_needs_a_permission_on_it() {
        for (method, path, op) in OPERATIONS {
            let on_space = path.starts_with("/spaces/{id}");
            assert_eq!(
                on_space,
                matches!(op.need(), Need::Space(_)),
                "{method} {path}"
            );
        }
    }
}
