//! [`LdapDirectory`]: the core's [`Directory`] port answered by search-then-bind against an
//! LDAP directory.

use super::connection::Connector;
use super::endpoint::Endpoint;
use super::error::LdapSetupError;
use super::filter::{self, UserFilter};
use super::pool::ServicePool;
use super::secret;
use super::settings::LdapSettings;
use super::{escape, search};
use async_trait::async_trait;
use natterjack_core::auth::{Directory, DirectoryError, DirectoryUser};
use natterjack_core::domain::Username;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// LDAP result code of a refused simple bind (RFC 4511 `invalidCredentials`).
const INVALID_CREDENTIALS: u32 = 49;

/// Checks Basic-auth passwords by binding to an LDAP directory as the user's entry, found
/// by a search with a service account. Built once at start-up from `[auth.ldap]`; it
/// reconnects by itself, so the directory may be down at start-up or restart later.
pub struct LdapDirectory {
    /// `ldap://host:port` or `ldaps://host:port`: the source name of linked accounts.
    source: String,
    /// Opens fresh connections (user binds).
    connector: Arc<Connector>,
    /// Service-account connections (searches).
    pool: ServicePool,
    /// Where users are searched.
    search_base: String,
    /// The operator's filter, `{username}` substituted escaped.
    user_filter: UserFilter,
    /// The group whose members are admins, if any.
    admin_group: Option<String>,
    /// Random bytes for the names bound when a user is unknown.
    random: &'static dyn rustls::crypto::SecureRandom,
}

impl fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("source", &self.source)
            .field("search_base", &self.search_base)
            .field("admin_group", &self.admin_group)
            .finish_non_exhaustive()
    }
}

impl LdapDirectory {
    /// Checks `settings` and reads the service account's password file. The directory is
    /// not contacted: until it can be reached, binds answer
    /// [`DirectoryError::Unavailable`]. The error names the setting at fault.
    pub fn new(settings: &LdapSettings) -> Result<Self, LdapSetupError> {
        let endpoint = Endpoint::parse(&settings.url, settings.allow_plaintext_loopback)
            .map_err(|(setting, message)| LdapSetupError::new(setting, message))?;
        let search_base = required_dn("search_base", &settings.search_base)?;
        let bind_dn = required_dn("bind_dn", &settings.bind_dn)?;
        let admin_group = match &settings.admin_group {
            Some(group) => Some(required_dn("admin_group", group)?),
            None => None,
        };
        let user_filter = UserFilter::parse(&settings.user_filter)
            .map_err(|message| LdapSetupError::new("user_filter", message))?;
        let connect_timeout = timeout("connect_timeout_ms", settings.connect_timeout_ms)?;
        let operation_timeout = timeout("operation_timeout_ms", settings.operation_timeout_ms)?;
        if !(1..=256).contains(&settings.pool_size) {
            return Err(LdapSetupError::new(
                "pool_size",
                format!("must be between 1 and 256, not {}", settings.pool_size),
            ));
        }
        let bind_password = secret::read_password_file(&settings.bind_password_file)?;
        let tls = crate::tls::client_config(settings.ca_file.as_deref())
            .map_err(|e| LdapSetupError::new("ca_file", e.to_string()))?;
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let source = endpoint.url.clone();
        let connector = Arc::new(Connector::new(
            endpoint,
            tls,
            connect_timeout,
            operation_timeout,
        ));
        let pool = ServicePool::new(
            Arc::clone(&connector),
            bind_dn,
            bind_password,
            settings.pool_size,
        );
        Ok(Self {
            source,
            connector,
            pool,
            search_base,
            user_filter,
            admin_group,
            random: provider.secure_random,
        })
    }

    /// The filter searched for `username` (escaped, whatever it holds). Public so that
    /// tests can show an injection attempt becomes literal text; not an API.
    #[doc(hidden)]
    pub fn user_filter_for(&self, username: &str) -> String {
        self.user_filter.for_username(username)
    }

    /// The DNs the user search finds for `username` (at most 2). Public so that tests can
    /// run the adapter's real search with any name, including ones the core's allow list
    /// refuses; not an API.
    #[doc(hidden)]
    pub async fn find_user_dns(&self, username: &str) -> Result<Vec<String>, DirectoryError> {
        let filter = self.user_filter.for_username(username);
        let found = search::run(
            &self.pool,
            &self.search_base,
            search::Scope::Subtree,
            &filter,
        )
        .await
        .map_err(DirectoryError::Unavailable)?;
        match found {
            search::Found::Entries(dns) => Ok(dns),
            search::Found::NoSuchBase => Err(DirectoryError::Unavailable(format!(
                "the search base {:?} does not exist (check [auth.ldap] search_base)",
                self.search_base
            ))),
        }
    }

    /// [`Directory::bind`] for any name, including ones the core's allow list refuses.
    /// Public so that tests can reach the directory with hostile names; not an API.
    #[doc(hidden)]
    pub async fn bind_name(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<DirectoryUser, DirectoryError> {
        let secret = password.expose_secret();
        if secret.is_empty() || secret.contains('\0') {
            // An empty simple bind is an anonymous bind that many directories accept, and a
            // NUL cannot be in an LDAP password: never sent.
            return Err(DirectoryError::Wrong);
        }
        let dns = self.find_user_dns(username).await?;
        let dn = match dns.as_slice() {
            [dn] if !dn.is_empty() => dn,
            [] => {
                tracing::debug!(%username, "no directory entry; binding to a name that cannot exist");
                self.decoy_bind(password).await;
                return Err(DirectoryError::Wrong);
            }
            _ => {
                tracing::warn!(
                    %username,
                    filter = %self.user_filter.for_username(username),
                    "the LDAP user filter matches more than one entry (or the root); refusing \
                     the login: make [auth.ldap] user_filter match one entry per name"
                );
                return Err(DirectoryError::Wrong);
            }
        };
        tracing::debug!(%username, %dn, "binding to the directory as the user's entry");
        let result = self
            .connector
            .bind_once(dn, password)
            .await
            .map_err(|e| DirectoryError::Unavailable(format!("user bind as {dn:?}: {e}")))?;
        match result.rc {
            0 => {}
            INVALID_CREDENTIALS => return Err(DirectoryError::Wrong),
            _ => {
                return Err(DirectoryError::Unavailable(format!(
                    "user bind as {dn:?}: {result}"
                )));
            }
        }
        let admin = self.is_admin(dn).await?;
        Ok(DirectoryUser {
            dn: dn.clone(),
            admin,
        })
    }

    /// Binds with `password` to a name under the search base that cannot exist, so that
    /// an unknown user costs the directory (and the client's wait) what a wrong password
    /// does. Its outcome is not the answer: the user is unknown either way.
    async fn decoy_bind(&self, password: &SecretString) {
        let mut bytes = [0_u8; 12];
        let suffix: String = match self.random.fill(&mut bytes) {
            Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            Err(_) => "0".to_owned(),
        };
        let rdn = escape::dn_value(&format!("natterjack-no-such-user-{suffix}"));
        let dn = format!("cn={rdn},{}", self.search_base);
        match self.connector.bind_once(&dn, password).await {
            Ok(result) if result.rc == INVALID_CREDENTIALS => {}
            Ok(result) => tracing::debug!(%dn, %result, "unexpected answer to the decoy bind"),
            Err(error) => tracing::debug!(%dn, %error, "the decoy bind failed"),
        }
    }

    /// Whether `dn` is a member of the admin group (false when none is configured, or the
    /// group does not exist, which is logged).
    async fn is_admin(&self, dn: &str) -> Result<bool, DirectoryError> {
        let Some(group) = &self.admin_group else {
            return Ok(false);
        };
        let found = search::run(
            &self.pool,
            group,
            search::Scope::Base,
            &filter::group_member(dn),
        )
        .await
        .map_err(DirectoryError::Unavailable)?;
        match found {
            search::Found::Entries(groups) => Ok(!groups.is_empty()),
            search::Found::NoSuchBase => {
                tracing::warn!(%group, "the LDAP admin group does not exist; nobody is an admin (check [auth.ldap] admin_group)");
                Ok(false)
            }
        }
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    /// `ldaps://host:port` or `ldap://host:port`, from `url` with the host lowercased and
    /// the port always written, so that writing the default port or not keeps the name.
    fn source(&self) -> &str {
        &self.source
    }

    async fn bind(
        &self,
        username: &Username,
        password: &SecretString,
    ) -> Result<DirectoryUser, DirectoryError> {
        self.bind_name(username.as_str(), password).await
    }
}

/// A DN setting, which must not be empty.
fn required_dn(setting: &'static str, value: &str) -> Result<String, LdapSetupError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(LdapSetupError::new(
            setting,
            "must be a distinguished name, not empty",
        ));
    }
    if value.contains('\0') {
        return Err(LdapSetupError::new(setting, "must not contain NUL"));
    }
    Ok(value.to_owned())
}

/// A timeout setting in milliseconds, between 1 ms and 5 minutes.
fn timeout(setting: &'static str, millis: u64) -> Result<Duration, LdapSetupError> {
    if !(1..=300_000).contains(&millis) {
        return Err(LdapSetupError::new(
            setting,
            format!("must be between 1 and 300000 milliseconds, not {millis}"),
        ));
    }
    Ok(Duration::from_millis(millis))
}
