use super::budgets::LoginBudgets;
use super::identity::AuthFailure;
use super::{PasswordHashing, VerificationCache};
use crate::ServiceError;
use crate::domain::{MAX_PASSWORD_BYTES, Username};
use crate::ports::Store;
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
pub struct Authenticator {
    store: Arc<dyn Store>,
    hashing: Arc<PasswordHashing>,
    cache: VerificationCache,
    dummy_hash: String,
    in_flight: InFlightTable,
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
        })
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
            Err(AuthFailure::Wrong | AuthFailure::Limited { .. }) => {
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
                    let _ = budgets.take(username, from);
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
                    .map_err(|r| limited(r, from, username))?,
            ),
            None => None,
        };
        let give_back = || {
            if let (Some(budgets), Some(guess)) = (budgets, guess) {
                budgets.give_back(username, from, guess);
            }
        };
        match pending.verify().await {
            Ok(principal) => {
                give_back();
                succeeded();
                Ok(principal)
            }
            Err(ServiceError::Unauthenticated) => Err(AuthFailure::Wrong),
            Err(e) => {
                give_back();
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
        let user = match Username::parse(username) {
            Ok(name) => self.store.find_user(&name).await?,
            Err(_) => None,
        };
        let key = user.as_ref().map(|user| {
            self.cache
                .key_for(user.username.as_str(), &candidate, &user.password_hash)
        });
        if let (Some(user), Some(key)) = (&user, &key)
            && self.cache.hit(key, user.id)
        {
            return Ok(Login::Verified(Principal::new(
                user.id,
                user.username.clone(),
                user.admin,
            )));
        }
        Ok(Login::NeedsHashing(PendingVerification {
            auth: self,
            user: user.zip(key),
            candidate,
            _turn: None,
        }))
    }

    /// Upgrades a stored hash to the configured parameters after a successful login. A
    /// failure is logged and ignored: the login itself was valid.
    async fn rehash(&self, user: &crate::ports::UserRecord, password: Zeroizing<Vec<u8>>) {
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

/// An Argon2id verification not yet run: of the stored hash, or of the dummy hash when the
/// user does not exist (the same work either way).
pub struct PendingVerification<'a> {
    auth: &'a Authenticator,
    user: Option<(crate::ports::UserRecord, [u8; 32])>,
    candidate: Zeroizing<Vec<u8>>,
    /// Held from [`PendingVerification::wait_turn`] until the verification is done.
    _turn: Option<InFlight<'a>>,
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
        let Some((user, key)) = &self.user else {
            return Turn::Hash(self);
        };
        if !auth.cache.enabled() {
            return Turn::Hash(self);
        }
        let lock = match auth.in_flight.lock() {
            Ok(mut table) => {
                let (lock, users) = table.entry(*key).or_default();
                *users += 1;
                lock.clone()
            }
            Err(_) => return Turn::Hash(self),
        };
        let mut turn = InFlight {
            table: &auth.in_flight,
            key: *key,
            guard: None,
        };
        turn.guard = Some(lock.lock_owned().await);
        if auth.cache.hit(key, user.id) {
            return Turn::Verified(Principal::new(user.id, user.username.clone(), user.admin));
        }
        self._turn = Some(turn);
        Turn::Hash(self)
    }

    /// Runs the verification. Errors: `Unauthenticated` for any wrong pair, `Busy` when the
    /// hasher is saturated.
    pub async fn verify(self) -> Result<Principal, ServiceError> {
        let Self {
            auth,
            user,
            candidate,
            _turn,
        } = self;
        let Some((user, key)) = user else {
            let _ = auth
                .hashing
                .verify(candidate, auth.dummy_hash.clone())
                .await?;
            return Err(ServiceError::Unauthenticated);
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

/// A login budget's refusal, named for the audit trail's coalescing.
fn limited(refusal: Refusal, from: IpAddr, username: &str) -> AuthFailure {
    let limited_by = limited_by(&refusal, from, Some(username));
    AuthFailure::Limited {
        refusal,
        limited_by,
    }
}
