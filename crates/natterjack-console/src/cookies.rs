//! The console's two cookies, read and written in one place.
//!
//! - [`SESSION`]: the session token. `__Host-` (so only this origin over HTTPS can set it,
//!   for the whole site, never a subdomain), `Secure`, `HttpOnly` (no script can read it),
//!   `SameSite=Strict` (a browser never sends it with a request another site started).
//! - [`SIGN_ON`]: binds a pending single sign-on to the browser that started it. It must
//!   come back with the identity provider's cross-site POST (SAML) or redirect (OpenID
//!   Connect), so it is `SameSite=None`; it is short-lived, only ever names a pending
//!   sign-on, and is taken (deleted) when used.

use http::HeaderMap;
use http::header::COOKIE;
use natterjack_core::session::SessionToken;
use std::time::Duration;

/// The session cookie's name.
pub const SESSION: &str = "__Host-natterjack-session";

/// The pending sign-on cookie's name.
pub const SIGN_ON: &str = "__Host-natterjack-sso";

/// How long a sign-on may take at the identity provider.
pub const SIGN_ON_LIFETIME: Duration = Duration::from_secs(300);

/// The values of every cookie named `name` in the request's `Cookie` headers.
fn values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(move |pair| {
            pair.trim()
                .split_once('=')
                .and_then(|(key, value)| (key == name).then_some(value))
        })
}

/// The value of cookie `name` in the request; `None` when absent, or when it appears more
/// than once (a second copy can only come from someone planting it).
pub fn read(headers: &HeaderMap, name: &str) -> Option<SessionToken> {
    let mut found = values(headers, name);
    let value = found.next()?;
    if found.next().is_some() {
        return None;
    }
    SessionToken::parse(value)
}

/// Whether the request carries a cookie named `name` at all, well-formed or not.
pub fn presented(headers: &HeaderMap, name: &str) -> bool {
    values(headers, name).next().is_some()
}

/// `Set-Cookie` for a new session. No `Max-Age`: the cookie ends with the browser, and the
/// server ends the session itself at its timeouts.
pub fn session(token: &SessionToken) -> String {
    format!(
        "{SESSION}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        token.cookie_value()
    )
}

/// `Set-Cookie` for a pending sign-on.
pub fn sign_on(token: &SessionToken) -> String {
    format!(
        "{SIGN_ON}={}; Path=/; Secure; HttpOnly; SameSite=None; Max-Age={}",
        token.cookie_value(),
        SIGN_ON_LIFETIME.as_secs()
    )
}

/// `Set-Cookie` that removes cookie `name` from the browser.
pub fn cleared(name: &str) -> String {
    let same_site = if name == SIGN_ON { "None" } else { "Strict" };
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_session_cookie_is_host_prefixed_secure_httponly_and_strict() {
        let cookie = session(&SessionToken::generate());
        for part in ["__Host-", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }

    #[test]
    fn a_cookie_is_presented_when_named_whatever_its_value() {
        let mut headers = HeaderMap::new();
        assert!(!presented(&headers, SESSION));
        headers.insert(
            COOKIE,
            HeaderValue::from_static("other=1; __Host-natterjack-sso=x"),
        );
        assert!(!presented(&headers, SESSION));
        headers.insert(
            COOKIE,
            HeaderValue::from_static("other=1; __Host-natterjack-session=garbage"),
        );
        assert!(presented(&headers, SESSION));
    }

    #[test]
    fn a_cookie_sent_twice_is_not_taken() {
        let token = SessionToken::generate();
        let mut headers = HeaderMap::new();
        let one = format!("{SESSION}={}", token.cookie_value());
        headers.insert(COOKIE, HeaderValue::from_str(&one).unwrap());
        assert!(read(&headers, SESSION).is_some());
        let other = SessionToken::generate();
        let two = format!("{one}; {SESSION}={}", other.cookie_value());
        headers.insert(COOKIE, HeaderValue::from_str(&two).unwrap());
        assert!(read(&headers, SESSION).is_none());
    }
}
