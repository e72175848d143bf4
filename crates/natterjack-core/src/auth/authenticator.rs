use super::budgets::LoginBudgets;
use super::directory::{Directory, DirectoryError, PasswordSource};
use super::identity::AuthFailure;
use super::linked::{ExternalIdentity, LinkedAccounts, Provisioning};
use super::{PasswordHashing, VerificationCache};
use crate::ServiceError;
use crate::domain::{MAX_PASSWORD_BYTES, Username};
use crate::ports::{Store, UserRecord};
use crate::principal::Principal;
use crate::rate::gcra::Refusal;
use crate::rate::limited_by;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;
use zeroize::Zeroizing;

/// Verifications in progress, by verification-cache key: one lock per set of credentials,
/// and how many logins hold or wait for it (the entry goes when that drops to zero).
type InFlightTable = Mutex<HashMap<[u8; 32], (Arc<tokio::sync::Mutex<()>>, usize)>>;

/// Verifies username/password pairs and produces a [`Principal`].
///
/// Every failure is the same [`ServiceError::Unauthenticated`], and an unknown (or
/// malformed) username is verified against a dummy hash made with the configured
/// parameters, so neither the answer nor the work reveals whether an account exists.
///
/// With a [`Directory`], the [`PasswordSource`] says which names are checked by a bind
/// instead: the same budgets, verification cache and single flight apply, a directory user
/// gets a local account linked on first use (refused when a local account already has the
/// name), and a directory that cannot be asked is
/// [`ServiceError::ProviderUnavailable`], never a wrong password and never a fall-back to
/// the local table.
pub struct Authenticator {
    store: Arc<dyn Store>,
    hashing: Arc<PasswordHashing>,
    cache: VerificationCache,
    dummy_hash: String,
    in_flight: InFlightTable,
    directory: Option<Arc<dyn Directory>>,
    source: PasswordSource,
}

impl Authenticator {
    /// Builds the authenticator, computing the dummy hash once (one Argon2 run at start-up).
    pub async fn new(
        store: Arc<dyn Store>,
        hashing: Arc<PasswordHashing>,
        cache: VerificationCache,
    ) -> Result<Self, ServiceError> {
        let mut random = Zeroizing::new(vec![0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut random);
        let dummy_hash = hashing.hash(random).await?;
        Ok(Self {
            store,
            hashing,
            cache,
            dummy_hash,
            in_flight: Mutex::new(HashMap::new()),
            directory: None,
            source: PasswordSource::Local,
        })
    }

    /// The same authenticator, checking the passwords that `source` assigns to the
    /// directory by a bind to `directory`.
    #[must_use]
    pub fn with_directory(mut self, directory: Arc<dyn Directory>, source: PasswordSource) -> Self {
        self.directory = Some(directory);
        self.source = source;
        self
    }

    /// The directory a password of `user` (looked up locally, if any) is checked against,
    /// or `None` for the local hash.
    fn directory_for(&self, user: Option<&UserRecord>) -> Option<&Arc<dyn Directory>> {
        let directory = self.directory.as_ref()?;
        match self.source {
            PasswordSource::Local => None,
            PasswordSource::Directory => Some(directory),
            PasswordSource::LocalThenDirectory => {
                (!user.is_some_and(UserRecord::has_local_password)).then_some(directory)
            }
        }
    }

    /// Checks the credentials, counting no guess ([`Authenticator::login`] without budgets).
    /// Errors: `Unauthenticated` for any wrong pair, `Busy` when the hasher is saturated,
    /// `Unavailable`/`Internal` when storage fails.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<Principal, ServiceError> {
        let nowhere = IpAddr::from([0, 0, 0, 0]);
        match self.login(None, username, password, nowhere).await {
            Ok(principal) => Ok(principal),
            // Without budgets nothing limits a guess: every other failure is a wrong pair.
            Err(AuthFailure::Wrong | AuthFailure::Refused(_) | AuthFailure::Limited { .. }) => {
                Err(ServiceError::Unauthenticated)
            }
            Err(AuthFailure::Unavailable(e)) => Err(e),
        }
    }

    /// Verifies a password, counting each guess that needs an Argon2id verification against
    /// the login `budgets` (`failed-logins`, and `account-guesses` from addresses that have not
    /// logged in as this user recently) before the hashing starts, and giving it back unless
    /// the password turned out wrong. A verification-cache hit takes nothing from the budgets;
    /// a password refused without hashing (empty or oversized) counts as a wrong guess, as any
    /// other. A success makes the address known to the account. Without budgets, the same
    /// flow counts nothing.
    pub async fn login(
        &self,
        budgets: Option<&LoginBudgets>,
        username: &str,
        password: &SecretString,
        from: IpAddr,
    ) -> Result<Principal, AuthFailure> {
        let succeeded = || {
            if let Some(budgets) = budgets {
                budgets.succeeded(username, from);
            }
        };
        if let Some(budgets) = budgets {
            budgets
                .allowed(username, from)
                .await
                .map_err(|r| limited(r, from, username))?;
        }
        let pending = match self.begin(username, password).await {
            Ok(Login::Verified(principal)) => {
                succeeded();
                return Ok(principal);
            }
            Ok(Login::NeedsHashing(pending)) => pending,
            Err(ServiceError::Unauthenticated) => {
                // Refused or not, the answer stays "wrong": the guess is counted either way.
                if let Some(budgets) = budgets {
                    let _ = budgets.take(username, from).await;
                }
                return Err(AuthFailure::Wrong);
            }
            Err(e) => return Err(AuthFailure::Unavailable(e)),
        };
        // Only a verification that will hash counts: one that waited for another of the very
        // same credentials and found it succeeded takes nothing from the budget.
        let pending = match pending.wait_turn().await {
            Turn::Verified(principal) => {
                succeeded();
                return Ok(principal);
            }
            Turn::Hash(pending) => pending,
        };
        let guess = match budgets {
            Some(budgets) => Some(
                budgets
                    .take(username, from)
                    .await
                    .map_err(|r| limited(r, from, username))?,
            ),
            None => None,
        };
        let give_back = || async {
            if let (Some(budgets), Some(guess)) = (budgets, guess) {
                budgets.give_back(username, from, guess).await;
            }
        };
        match pending.verify().await {
            Ok(principal) => {
                give_back().await;
                succeeded();
                Ok(principal)
            }
            Err(ServiceError::Unauthenticated) => Err(AuthFailure::Wrong),
            Err(e) => {
                give_back().await;
                Err(AuthFailure::Unavailable(e))
            }
        }
    }

    /// The cheap half of [`Authenticator::authenticate`]: answers from the verification cache
    /// when it can, and otherwise hands back the Argon2id verification still to be made, so
    /// that the caller can count a guess against its limit before any hashing starts (a
    /// limit checked before and counted after the verification lets every concurrent guess
    /// through). Errors as for `authenticate`; an oversized or empty password is refused
    /// here, without hashing, since the answer is independent of the account.
    pub async fn begin(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<Login<'_>, ServiceError> {
        let secret = password.expose_secret().as_bytes();
        if secret.is_empty() || secret.len() > MAX_PASSWORD_BYTES {
            return Err(ServiceError::Unauthenticated);
        }
        let candidate = Zeroizing::new(secret.to_vec());
        let name = Username::parse(username).ok();
        let user = match &name {
            Some(name) => self.store.find_user(name).await?,
            None => None,
        };
        let check = match self.directory_for(user.as_ref()) {
            Some(directory) => {
                // A name outside the allow list, or a NUL that a directory written in C
                // may cut the password at, never reaches the directory.
                let Some(name) = name else {
                    return Err(ServiceError::Unauthenticated);
                };
                if secret.contains(&0) {
                    return Err(ServiceError::Unauthenticated);
                }
                let subject = name.as_str().to_ascii_lowercase();
                let linked = self
                    .store
                    .find_linked_user(directory.source(), &subject)
                    .await?;
                let key = self.cache.key_for(&subject, &candidate, directory.source());
                let admin_key = self.cache.key_for(
                    &subject,
                    &candidate,
                    &format!("{} admin", directory.source()),
                );
                Check::Directory(Box::new(DirectoryCheck {
                    directory: directory.clone(),
                    name,
                    linked,
                    key,
                    admin_key,
                }))
            }
            None => {
                let user = user.filter(UserRecord::has_local_password);
                let key = user.as_ref().map(|user| {
                    self.cache
                        .key_for(user.username.as_str(), &candidate, &user.password_hash)
                });
                Check::Local(user.zip(key))
            }
        };
        let pending = PendingVerification {
            auth: self,
            check,
            candidate,
            _turn: None,
        };
        Ok(match pending.cached() {
            Some(principal) => Login::Verified(principal),
            None => Login::NeedsHashing(pending),
        })
    }

    /// Upgrades a stored hash to the configured parameters after a successful login. A
    /// failure is logged and ignored: the login itself was valid.
    async fn rehash(&self, user: &UserRecord, password: Zeroizing<Vec<u8>>) {
        match self.hashing.hash(password).await {
            Ok(new_hash) => {
                if let Err(e) = self.store.set_password_hash(user.id, &new_hash).await {
                    tracing::warn!(error = %e, "could not store re-hashed password");
                } else {
                    tracing::info!(user = %user.username, "password re-hashed with current parameters");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not re-hash password"),
        }
    }

    /// Forgets cached verifications of a user whose password just changed here.
    pub fn forget(&self, user: crate::domain::UserId) {
        self.cache.forget_user(user);
    }

    /// Logins holding or waiting for a turn at verifying their credentials (tests: every
    /// entry must go once its logins are done or dropped).
    pub fn verifications_in_flight(&self) -> usize {
        self.in_flight.lock().map_or(0, |table| table.len())
    }

    /// The hasher, shared with registration so both count against one concurrency bound.
    pub fn hashing(&self) -> &Arc<PasswordHashing> {
        &self.hashing
    }
}

/// Where a login stands after [`Authenticator::begin`].
pub enum Login<'a> {
    /// The verification cache vouched for the credentials: no hashing needed.
    Verified(Principal),
    /// An Argon2id verification has to decide.
    NeedsHashing(PendingVerification<'a>),
}

/// A verification not yet run: an Argon2id verification of the stored hash, or of the
/// dummy hash when the user does not exist (the same work either way), or a directory bind.
pub struct PendingVerification<'a> {
    auth: &'a Authenticator,
    check: Check,
    candidate: Zeroizing<Vec<u8>>,
    /// Held from [`PendingVerification::wait_turn`] until the verification is done.
    _turn: Option<InFlight<'a>>,
}

/// What decides a pending verification.
enum Check {
    /// The user's local hash and its cache key, or the dummy hash for no such user (or one
    /// without a local password).
    Local(Option<(UserRecord, [u8; 32])>),
    /// A bind to the directory.
    Directory(Box<DirectoryCheck>),
}

/// A directory bind still to be made, and where its success is cached.
struct DirectoryCheck {
    directory: Arc<dyn Directory>,
    name: Username,
    /// The local account already linked to this directory user, if any.
    linked: Option<UserRecord>,
    /// Cache keys of a success without and with the directory's admin role: the cache keeps
    /// only an account id, so the role is part of the key.
    key: [u8; 32],
    admin_key: [u8; 32],
}

/// Where a pending verification stands once no other verification of the same credentials
/// is running (see [`PendingVerification::wait_turn`]).
pub enum Turn<'a> {
    /// A verification of the same credentials succeeded meanwhile: no hashing needed.
    Verified(Principal),
    /// This one has to hash.
    Hash(PendingVerification<'a>),
}

/// One login's place in the table, from before it waits until it is done: dropping it,
/// also when the request is cancelled while waiting, releases the turn and leaves the
/// table, removing the entry when nobody else holds or waits for it.
struct InFlight<'a> {
    table: &'a InFlightTable,
    key: [u8; 32],
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.guard.take();
        if let Ok(mut table) = self.table.lock()
            && let Some((_, users)) = table.get_mut(&self.key)
        {
            *users = users.saturating_sub(1);
            if *users == 0 {
                table.remove(&self.key);
            }
        }
    }
}

impl<'a> PendingVerification<'a> {
    /// Waits while another request verifies the very same credentials (the same user,
    /// password and stored hash), then answers from the verification cache if that one
    /// succeeded. Without this, a client that opens several connections at once with a
    /// right password makes as many Argon2id runs, and each takes a failed-logins token
    /// before hashing, so more of them than that limit's burst were refused (429) although
    /// none was wrong. Different passwords never wait for each other; an unknown user is
    /// not looked up at all (its dummy verification shares nothing). With the cache
    /// switched off there is nothing to share, and nothing waits.
    pub async fn wait_turn(mut self) -> Turn<'a> {
        let auth: &'a Authenticator = self.auth;
        let key = match &self.check {
            Check::Local(Some((_, key))) => *key,
            Check::Directory(check) if check.linked.is_some() => check.key,
            _ => return Turn::Hash(self),
        };
        if !auth.cache.enabled() {
            return Turn::Hash(self);
        }
        let lock = match auth.in_flight.lock() {
            Ok(mut table) => {
                let (lock, users) = table.entry(key).or_default();
                *users += 1;
                lock.clone()
            }
            Err(_) => return Turn::Hash(self),
        };
        let mut turn = InFlight {
            table: &auth.in_flight,
            key,
            guard: None,
        };
        turn.guard = Some(lock.lock_owned().await);
        if let Some(principal) = self.cached() {
            return Turn::Verified(principal);
        }
        self._turn = Some(turn);
        Turn::Hash(self)
    }

    /// The principal the verification cache vouches for, if it does.
    fn cached(&self) -> Option<Principal> {
        let cache = &self.auth.cache;
        match &self.check {
            Check::Local(Some((user, key))) => cache
                .hit(key, user.id)
                .then(|| Principal::new(user.id, user.username.clone(), user.admin)),
            Check::Directory(check) => {
                let DirectoryCheck {
                    linked: Some(user),
                    key,
                    admin_key,
                    ..
                } = check.as_ref()
                else {
                    return None;
                };
                let admin = if cache.hit(admin_key, user.id) {
                    true
                } else if cache.hit(key, user.id) {
                    false
                } else {
                    return None;
                };
                Some(Principal::new(
                    user.id,
                    user.username.clone(),
                    user.admin || admin,
                ))
            }
            _ => None,
        }
    }

    /// Runs the verification. Errors: `Unauthenticated` for any wrong pair, `Busy` when the
    /// hasher is saturated, `ProviderUnavailable` when the directory cannot be asked.
    pub async fn verify(self) -> Result<Principal, ServiceError> {
        let Self {
            auth,
            check,
            candidate,
            _turn,
        } = self;
        let (user, key) = match check {
            Check::Directory(check) => return auth.bind(*check, candidate).await,
            Check::Local(None) => {
                let _ = auth
                    .hashing
                    .verify(candidate, auth.dummy_hash.clone())
                    .await?;
                return Err(ServiceError::Unauthenticated);
            }
            Check::Local(Some(found)) => found,
        };
        let for_rehash = candidate.clone();
        if !auth
            .hashing
            .verify(candidate, user.password_hash.clone())
            .await?
        {
            return Err(ServiceError::Unauthenticated);
        }
        if auth.hashing.needs_rehash(&user.password_hash) {
            auth.rehash(&user, for_rehash).await;
        } else {
            auth.cache.remember(key, user.id);
        }
        Ok(Principal::new(user.id, user.username, user.admin))
    }
}

impl Authenticator {
    /// A directory bind, then the directory user's local account (linked on first use).
    async fn bind(
        &self,
        check: DirectoryCheck,
        candidate: Zeroizing<Vec<u8>>,
    ) -> Result<Principal, ServiceError> {
        let DirectoryCheck {
            directory,
            name,
            linked,
            key,
            admin_key,
        } = check;
        let password = SecretString::from(
            String::from_utf8(candidate.to_vec()).map_err(|_| ServiceError::Unauthenticated)?,
        );
        let found = match directory.bind(&name, &password).await {
            Ok(found) => found,
            Err(DirectoryError::Wrong) => return Err(ServiceError::Unauthenticated),
            Err(DirectoryError::Unavailable(detail)) => {
                tracing::warn!(error = %detail, "directory unavailable");
                return Err(ServiceError::ProviderUnavailable("directory"));
            }
        };
        let subject = name.as_str().to_ascii_lowercase();
        let user = match linked {
            Some(user) => user,
            None => LinkedAccounts::new(self.store.clone())
                .account(
                    ExternalIdentity {
                        source: directory.source(),
                        subject: &subject,
                        name: Some(name.as_str()),
                        admin: found.admin,
                    },
                    Provisioning::Create,
                )
                .await
                .map_err(|failure| match failure {
                    AuthFailure::Unavailable(e) => e,
                    _ => {
                        tracing::warn!(
                            user = %name,
                            dn = %found.dn,
                            "directory user refused: a local account has this name; link it with `natterjack user link`"
                        );
                        ServiceError::Unauthenticated
                    }
                })?,
        };
        self.cache
            .remember(if found.admin { admin_key } else { key }, user.id);
        Ok(Principal::new(
            user.id,
            user.username,
            user.admin || found.admin,
        ))
    }
}

/// A login budget's refusal, named for the audit trail's coalescing.
fn limited(refusal: Refusal, from: IpAddr, username: &str) -> AuthFailure {
    let limited_by = limited_by(&refusal, from, Some(username));
    AuthFailure::Limited {
        refusal,
        limited_by,
    }
}
