//! The console's routes and the operation each performs. The needs are declared once, with
//! the operations, in `natterjack_api::pipeline::operation`: a page about a space needs the
//! same permission as the REST call that reads or changes it.

use http::Method;
use natterjack_api::pipeline::Operation;

/// Every console route and method, with its operation. Routes are relative to `/console`.
pub const OPERATIONS: &[(&str, &str, Operation)] = &[
    ("GET", "/", Operation::ConsolePage),
    ("GET", "/login", Operation::ConsolePage),
    ("POST", "/login", Operation::ConsoleLogin),
    ("POST", "/logout", Operation::ConsoleLogout),
    ("GET", "/static/console.css", Operation::ConsolePage),
    ("GET", "/spaces", Operation::ListSpaces),
    ("POST", "/spaces", Operation::CreateSpace),
    ("GET", "/spaces/{id}", Operation::ListMessages),
    ("POST", "/spaces/{id}/messages", Operation::PostMessage),
    (
        "POST",
        "/spaces/{id}/messages/{msgId}/delete",
        Operation::DeleteMessage,
    ),
    ("GET", "/spaces/{id}/members", Operation::ListMembers),
    ("POST", "/spaces/{id}/members", Operation::GrantPermissions),
    (
        "POST",
        "/spaces/{id}/members/{username}/revoke",
        Operation::RevokePermissions,
    ),
    ("GET", "/audit", Operation::ListAudit),
    ("GET", "/alerts", Operation::ListAudit),
    ("GET", "/activity", Operation::ListAudit),
    ("GET", "/saml/metadata", Operation::ConsolePage),
    ("POST", "/saml/login", Operation::SignOnStart),
    ("POST", "/saml/acs", Operation::SignOnFinish),
    ("POST", "/oidc/login", Operation::SignOnStart),
    ("GET", "/oidc/callback", Operation::SignOnFinish),
];

/// The operation of `method` on the route template `route` (with or without the
/// `/console` prefix); `None` for anything undeclared (answered 404 or 405).
pub fn declared(method: &Method, route: &str) -> Option<Operation> {
    let route = route.strip_prefix("/console").unwrap_or(route);
    let route = if route.is_empty() { "/" } else { route };
    OPERATIONS
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, op)| *op)
}

/// Whether a POST to `route` must carry the session's CSRF token: every state change but
/// the logins (no session yet; the `Origin` check covers them) and the SAML assertion
/// consumer (a cross-site POST by design, proven by its signature and pending request).
pub fn needs_csrf_token(route: &str) -> bool {
    let route = route.strip_prefix("/console").unwrap_or(route);
    !matches!(
        route,
        "/login" | "/saml/login" | "/oidc/login" | "/saml/acs"
    )
}

/// Whether a POST to `route` must come from the console's own origin.
pub fn needs_same_origin(route: &str) -> bool {
    let route = route.strip_prefix("/console").unwrap_or(route);
    route != "/saml/acs"
}

#[cfg(test)]
mod tests {
    use super::*;
    use natterjack_api::pipeline::Need;

    #[test]
    fn every_state_change_is_a_post_and_every_post_of_a_session_needs_the_csrf_token() {
        for (method, route, op) in OPERATIONS {
            // The one exception: the OpenID Connect provider sends the browser back by a
            // redirect, which is a GET; its `state` and the sign-on cookie prove it.
            if op.changes_state() && *route != "/oidc/callback" {
                assert_eq!(*method, "POST", "{route}");
            }
            let signs_in = route.ends_with("/login") || *route == "/saml/acs";
            if *method == "POST" && !signs_in {
                assert!(needs_csrf_token(route), "{route}");
            }
            if *method == "POST" && *route != "/saml/acs" {
                assert!(needs_same_origin(route), "{route}");
            }
        }
        assert!(!needs_same_origin("/console/saml/acs"));
    }

    #[test]
    fn every_page_under_a_space_needs_a_permission_on_it() {
        for (method, route, op) in OPERATIONS {
            assert_eq!(
                route.starts_with("/spaces/{id}"),
                matches!(op.need(), Need::Space(_)),
                "{method} {route}"
            );
        }
    }
}
