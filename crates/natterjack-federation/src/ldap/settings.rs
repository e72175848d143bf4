//! The `[auth.ldap]` configuration section, as the operator writes it. Checked and turned
//! into a working adapter by [`LdapDirectory::new`](super::LdapDirectory::new).

use serde::Deserialize;
use std::path::PathBuf;

/// The filter used when `user_filter` is not set: a person entry whose `uid` is the name.
pub const DEFAULT_USER_FILTER: &str = "(&(objectClass=inetOrgPerson)(uid={username}))";

/// The placeholder in `user_filter` replaced by the (RFC 4515-escaped) login name.
pub const USERNAME_PLACEHOLDER: &str = "{username}";

/// Where and how Basic-auth passwords are checked against an LDAP directory
/// (search-then-bind). Unknown keys are refused so that a typo does not silently fall back
/// to a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// The directory, `ldaps://host[:port]` (TLS from the first byte, default port 636) or
    /// `ldap://host[:port]` (default port 389; StartTLS is then always negotiated, see
    /// `allow_plaintext_loopback`). Required. No path, query or credentials: the search base
    /// is `search_base`.
    pub url: String,

    /// Plaintext LDAP (no StartTLS) to a loopback host (`127.0.0.0/8`, `::1`, `localhost`)
    /// with an `ldap://` URL, for a directory on the same machine. Default `false`. Ignored
    /// for `ldaps://`; set with an `ldap://` URL to any other host, start-up fails (a
    /// plaintext bind would send passwords over the network).
    #[serde(default)]
    pub allow_plaintext_loopback: bool,

    /// A PEM file of the CA certificate(s) the directory's certificate must chain to.
    /// Default: none, the system's root certificates are trusted instead.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,

    /// The DN under which users are searched (subtree scope), e.g.
    /// `ou=people,dc=example,dc=org`. Required.
    pub search_base: String,

    /// The search filter finding a user's entry; `{username}` (exactly once) is replaced by
    /// the login name, RFC 4515-escaped. Default
    /// `(&(objectClass=inetOrgPerson)(uid={username}))`.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,

    /// The service account's DN, bound on the connections that search. Required.
    pub bind_dn: String,

    /// A file holding the service account's password (one trailing newline is ignored).
    /// Read once at start-up; the password is never logged. Required.
    pub bind_password_file: PathBuf,

    /// The DN of a `groupOfNames` or `groupOfUniqueNames` whose members are admins.
    /// Default: none, no directory user is an admin.
    #[serde(default)]
    pub admin_group: Option<String>,

    /// How long to wait for a TCP connection plus its TLS (or StartTLS) handshake, in
    /// milliseconds. Default 3000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,

    /// How long to wait for one LDAP operation (bind, search, each search reply), in
    /// milliseconds; also the longest wait for a free pooled connection. Default 5000.
    #[serde(default = "default_operation_timeout_ms")]
    pub operation_timeout_ms: u64,

    /// How many service-account connections are kept for searches, at most (also how many
    /// logins are checked at once). At least 1. Default 4.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

impl LdapSettings {
    /// Settings with every optional field at its default, for code and tests that build the
    /// section without a configuration file.
    pub fn new(
        url: impl Into<String>,
        search_base: impl Into<String>,
        bind_dn: impl Into<String>,
        bind_password_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            url: url.into(),
            allow_plaintext_loopback: false,
            ca_file: None,
            search_base: search_base.into(),
            user_filter: default_user_filter(),
            bind_dn: bind_dn.into(),
            bind_password_file: bind_password_file.into(),
            admin_group: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            operation_timeout_ms: default_operation_timeout_ms(),
            pool_size: default_pool_size(),
        }
    }
}

fn default_user_filter() -> String {
    DEFAULT_USER_FILTER.to_owned()
}

fn default_connect_timeout_ms() -> u64 {
    3000
}

fn default_operation_timeout_ms() -> u64 {
    5000
}

fn default_pool_size() -> usize {
    4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_fields_take_their_documented_defaults() {
        let settings: LdapSettings = serde_json::from_str(
            r#"{"url": "ldaps://dir:636", "search_base": "dc=x", "bind_dn": "cn=s,dc=x",
                "bind_password_file": "/run/pw"}"#,
        )
        .unwrap();
        assert_eq!(
            settings,
            LdapSettings::new("ldaps://dir:636", "dc=x", "cn=s,dc=x", "/run/pw")
        );
        assert_eq!(settings.user_filter, DEFAULT_USER_FILTER);
        assert_eq!(settings.connect_timeout_ms, 3000);
        assert_eq!(settings.operation_timeout_ms, 5000);
        assert_eq!(settings.pool_size, 4);
        assert!(!settings.allow_plaintext_loopback);
        assert_eq!(settings.ca_file, None);
        assert_eq!(settings.admin_group, None);
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let refused = serde_json::from_str::<LdapSettings>(
            r#"{"url": "ldaps://dir", "search_base": "dc=x", "bind_dn": "cn=s,dc=x",
                "bind_password_file": "/run/pw", "bind_password": "inline"}"#,
        );
        assert!(refused.is_err());
    }

    #[test]
    fn a_missing_required_key_is_refused() {
        let refused = serde_json::from_str::<LdapSettings>(
            r#"{"url": "ldaps://dir", "bind_dn": "cn=s,dc=x", "bind_password_file": "/p"}"#,
        );
        assert!(refused.is_err());
    }
}
