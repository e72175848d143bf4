//! The console as the security tests see it from outside: reqwest that follows no redirect
//! (a 303 is what is checked), the console's cookies kept by hand (each test decides which
//! cookie a request carries, as an attacker would), and `Origin` sent with every POST as a
//! browser sends it with a form of the page's own site.

use super::{TestServer, cli};
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use std::path::Path;

/// The session cookie's name.
pub const SESSION: &str = "__Host-natterjack-session";

/// The pending sign-on cookie's name.
pub const SIGN_ON: &str = "__Host-natterjack-sso";

/// One `Set-Cookie` of a response: the value and the attributes after it, as sent.
#[derive(Debug, Clone)]
pub struct SetCookie {
    /// The cookie's value (empty when the server clears it).
    pub value: String,
    /// Every attribute (`Path=/`, `Secure`, ...), trimmed.
    pub attributes: Vec<String>,
}

impl SetCookie {
    /// Whether `attribute` (case-insensitive, e.g. `httponly` or `samesite=strict`) is set.
    pub fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    /// Whether the attribute named `name` is set with any value (e.g. `Domain`).
    pub fn names(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| {
            a.split('=')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
    }
}

/// The `Set-Cookie` of `response` for cookie `name`, if it sets one (the last, if several).
pub fn set_cookie(response: &Response, name: &str) -> Option<SetCookie> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|line| {
            let mut parts = line.split(';');
            let (key, value) = parts.next()?.trim().split_once('=')?;
            (key == name).then(|| SetCookie {
                value: value.to_owned(),
                attributes: parts.map(|a| a.trim().to_owned()).collect(),
            })
        })
        .next_back()
}

/// The new session token `response` hands the browser, if any (not a clearing cookie).
pub fn new_session(response: &Response) -> Option<String> {
    set_cookie(response, SESSION)
        .map(|c| c.value)
        .filter(|v| !v.is_empty())
}

/// Where a redirect points.
pub fn location(response: &Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in a {} answer", response.status()))
        .to_owned()
}

/// The value of the first hidden `csrf` input of a page.
pub fn csrf(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf input on the page: {page}"))
        .to_owned()
}

/// The console of one test server, with a client that follows no redirect.
pub struct Console<'a> {
    /// The server.
    pub server: &'a TestServer,
    client: Client,
}

impl<'a> Console<'a> {
    /// The console of `server`.
    pub fn of(server: &'a TestServer) -> Self {
        let client = super::client_trusting(&server.data_dir().join("ca.pem"), |b| {
            b.redirect(reqwest::redirect::Policy::none())
        });
        Self { server, client }
    }

    /// The client (no redirects, the server's CA), for requests a test builds itself.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The console's origin, as a browser sends it in `Origin`.
    pub fn origin(&self) -> &str {
        &self.server.base
    }

    fn with_cookies(request: RequestBuilder, cookies: &[(&str, &str)]) -> RequestBuilder {
        if cookies.is_empty() {
            return request;
        }
        let header: Vec<String> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        request.header(COOKIE, header.join("; "))
    }

    /// `GET path` with the session cookie `session` (none: no cookie at all).
    pub async fn get(&self, session: Option<&str>, path: &str) -> Response {
        let cookies: Vec<(&str, &str)> = session.map(|s| (SESSION, s)).into_iter().collect();
        Self::with_cookies(self.client.get(self.server.url(path)), &cookies)
            .send()
            .await
            .expect("GET")
    }

    /// `GET path` with the session `session`, which must answer 200; the page.
    pub async fn page(&self, session: &str, path: &str) -> String {
        let r = self.get(Some(session), path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.expect("page")
    }

    /// `GET path` without any cookie, which must answer 200; the page.
    pub async fn page_anonymous(&self, path: &str) -> String {
        let r = self.get(None, path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().await.expect("page")
    }

    /// A POST of the form `fields` to `path` as a browser on the console's own page sends
    /// it: `Origin` the console's, `Sec-Fetch-Site: same-origin`, with `cookies`.
    pub fn form(
        &self,
        path: &str,
        cookies: &[(&str, &str)],
        fields: &[(&str, &str)],
    ) -> RequestBuilder {
        let request = self
            .client
            .post(self.server.url(path))
            .header(ORIGIN, self.origin())
            .header("sec-fetch-site", "same-origin")
            .form(fields);
        Self::with_cookies(request, cookies)
    }

    /// [`Console::form`] with the session cookie `session`, sent.
    pub async fn post(&self, session: &str, path: &str, fields: &[(&str, &str)]) -> Response {
        self.form(path, &[(SESSION, session)], fields)
            .send()
            .await
            .expect("POST")
    }

    /// The login form posted with `username` and `password`, and the cookies `cookies`.
    pub async fn log_in_with(
        &self,
        username: &str,
        password: &str,
        cookies: &[(&str, &str)],
    ) -> Response {
        self.form(
            "/console/login",
            cookies,
            &[("username", username), ("password", password)],
        )
        .send()
        .await
        .expect("POST /console/login")
    }

    /// Logs `username` in with `password`: the session token of the cookie the login set.
    pub async fn log_in(&self, username: &str, password: &str) -> String {
        let r = self.log_in_with(username, password, &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {username}");
        assert_eq!(location(&r), "/console/spaces");
        new_session(&r).expect("a session cookie")
    }

    /// The CSRF token the pages of `session` carry.
    pub async fn csrf_of(&self, session: &str) -> String {
        csrf(&self.page(session, "/console/spaces").await)
    }

    /// Whether `session` still opens the console: a page, or (ended) a 303 to the login form.
    pub async fn holds(&self, session: &str) -> bool {
        let r = self.get(Some(session), "/console/spaces").await;
        match r.status() {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER => {
                assert_eq!(location(&r), "/console/login");
                false
            }
            other => panic!("GET /console/spaces answered {other}"),
        }
    }
}

/// The request id a response carries.
pub fn request_id(response: &Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .expect("x-request-id")
        .to_owned()
}

/// `natterjack sessions list` of `data_dir`, run with `env` (a PostgreSQL server's): (id,
/// user, method) of each session.
pub fn listed(data_dir: &Path, env: &[(&str, &str)]) -> Vec<(String, String, String)> {
    let (ok, out, err) = cli(data_dir, &["sessions", "list"], "", env);
    assert!(ok, "sessions list: {err}");
    let mut lines = out.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("ID\tUSER")),
        "{out}"
    );
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 6, "{line}");
            (
                fields[0].to_owned(),
                fields[1].to_owned(),
                fields[2].to_owned(),
            )
        })
        .collect()
}

/// `(user, method)` of every session of `server`, as the operator lists them.
pub fn users_signed_in(server: &TestServer) -> Vec<(String, String)> {
    listed(&server.data_dir(), &[])
        .into_iter()
        .map(|(_, user, method)| (user, method))
        .collect()
}
