//! Where the directory is and how the connection to it is protected, decided once at
//! start-up from `url` and `allow_plaintext_loopback`: TLS unless the operator explicitly
//! allowed plaintext to a directory on this machine.

use std::net::IpAddr;

/// How the bytes to the directory are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with the StartTLS extended operation before anything else.
    StartTls,
    /// `ldap://` in the clear: only to a loopback host, and only when allowed.
    PlaintextLoopback,
}

/// The directory's address and transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `ldap://host:port` or `ldaps://host:port` (host lowercased, port always written):
    /// both what ldap3 connects to and the directory's stable source name.
    pub(crate) url: String,
    /// How the connection is protected.
    pub(crate) transport: Transport,
}

impl Endpoint {
    /// Checks the `url` and `allow_plaintext_loopback` settings; the error is the setting at
    /// fault and a sentence for the operator.
    pub(crate) fn parse(
        raw: &str,
        allow_plaintext_loopback: bool,
    ) -> Result<Self, (&'static str, String)> {
        Self::parse_url(raw, allow_plaintext_loopback).map_err(|e| ("url", e))?
    }

    /// [`Endpoint::parse`]: the outer result is about `url`, the inner one about
    /// `allow_plaintext_loopback`.
    #[allow(clippy::type_complexity)]
    fn parse_url(
        raw: &str,
        allow_plaintext_loopback: bool,
    ) -> Result<Result<Self, (&'static str, String)>, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
        let (scheme, default_port) = match url.scheme() {
            "ldaps" => ("ldaps", 636),
            "ldap" => ("ldap", 389),
            other => {
                return Err(format!(
                    "{raw:?} has the scheme {other:?}; use ldaps:// or ldap:// (StartTLS)"
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "{raw:?} holds credentials; use bind_dn and bind_password_file"
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{raw:?} has a path, query or fragment; give only ldaps://host:port \
                 (the search base is search_base)"
            ));
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_ascii_lowercase(),
            _ => return Err(format!("{raw:?} names no host")),
        };
        let port = url.port().unwrap_or(default_port);
        let transport = match scheme {
            "ldaps" => Transport::Ldaps,
            _ if !allow_plaintext_loopback => Transport::StartTls,
            _ if is_loopback(&host) => Transport::PlaintextLoopback,
            _ => {
                return Ok(Err((
                    "allow_plaintext_loopback",
                    format!(
                        "is true, but {raw:?} is not a loopback host (127.0.0.0/8, ::1, \
                         localhost): plaintext LDAP binds to another machine are refused; \
                         remove the setting to use StartTLS, or use ldaps://"
                    ),
                )));
            }
        };
        Ok(Ok(Self {
            url: format!("{scheme}://{host}:{port}"),
            transport,
        }))
    }
}

/// Whether `host` (as written in a URL, IPv6 in brackets) names this machine:
/// `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, allow: bool) -> Endpoint {
        Endpoint::parse(raw, allow).unwrap()
    }

    fn refusal(raw: &str, allow: bool) -> (&'static str, String) {
        Endpoint::parse(raw, allow).unwrap_err()
    }

    #[test]
    fn ldaps_is_tls_with_636_as_the_default_port() {
        let endpoint = parse("ldaps://Dir.Example.org", false);
        assert_eq!(endpoint.url, "ldaps://dir.example.org:636");
        assert_eq!(endpoint.transport, Transport::Ldaps);
    }

    #[test]
    fn ldap_is_starttls_with_389_as_the_default_port() {
        let endpoint = parse("ldap://dir.example.org/", false);
        assert_eq!(endpoint.url, "ldap://dir.example.org:389");
        assert_eq!(endpoint.transport, Transport::StartTls);
    }

    #[test]
    fn ldap_to_loopback_is_still_starttls_unless_plaintext_is_allowed() {
        for host in ["127.0.0.1", "127.8.9.10", "localhost", "[::1]"] {
            let url = format!("ldap://{host}:3890");
            assert_eq!(parse(&url, false).transport, Transport::StartTls);
            assert_eq!(parse(&url, true).transport, Transport::PlaintextLoopback);
        }
    }

    #[test]
    fn plaintext_to_a_host_that_is_not_loopback_is_refused_naming_the_setting() {
        for host in [
            "dir.example.org",
            "10.0.0.1",
            "[::2]",
            "localhost.example.org",
        ] {
            let url = format!("ldap://{host}:389");
            let (setting, message) = refusal(&url, true);
            assert_eq!(setting, "allow_plaintext_loopback");
            assert!(message.contains("not a loopback host"), "{message}");
            assert_eq!(parse(&url, false).transport, Transport::StartTls);
        }
    }

    #[test]
    fn allowing_plaintext_loopback_does_not_weaken_ldaps() {
        assert_eq!(parse("ldaps://127.0.0.1", true).transport, Transport::Ldaps);
    }

    #[test]
    fn other_schemes_paths_credentials_and_missing_hosts_are_refused() {
        for raw in [
            "https://dir.example.org",
            "ldapi:///run/slapd.sock",
            "ldaps://dir.example.org/dc=example,dc=org",
            "ldaps://dir.example.org/?uid",
            "ldaps://admin:pw@dir.example.org",
            "ldaps://",
            "not a url",
        ] {
            assert_eq!(refusal(raw, false).0, "url", "{raw}");
        }
    }
}
