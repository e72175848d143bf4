//! One issuer's signing keys: discovery and the JWKS fetched at start, kept in memory, and
//! fetched again only when a token names a key not yet known (one fetch at a time, at most
//! one per `refetch_interval`) or when the set is older than `keys_max_age`. While the
//! issuer cannot be reached, the keys already fetched keep working. The discovery document
//! also gives the code flow its authorization and token endpoints.

use super::settings::Issuer;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use natterjack_core::clock::SharedClock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// A verification key and the algorithm its JWK pins, if it does.
pub(crate) struct Key {
    pub(crate) decoding: DecodingKey,
    pub(crate) algorithm: Option<Algorithm>,
}

/// Why no key could be had for a `kid`.
#[derive(Debug)]
pub(crate) enum KeyError {
    /// The issuer's current key set does not hold it (or may not be asked again yet).
    Unknown,
    /// The issuer could not be asked, and no key set is at hand to say no.
    Unavailable(String),
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<Key>>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    discovery: Option<Arc<Discovery>>,
}

/// The parts of the issuer's discovery document this process uses. The endpoints of the
/// authorization code flow are optional: an issuer trusted only for bearer tokens need not
/// offer them.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Discovery {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: String,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) token_endpoint_auth_methods_supported: Option<Vec<String>>,
    pub(crate) code_challenge_methods_supported: Option<Vec<String>>,
}

/// The key cache of one issuer.
pub(crate) struct Keys {
    issuer: Issuer,
    http: reqwest::Client,
    current: RwLock<Arc<KeySet>>,
    fetching: tokio::sync::Mutex<FetchState>,
    clock: SharedClock,
    fetches: AtomicU64,
}

impl Keys {
    /// A cache for `issuer`, fetching over `http`; nothing is fetched yet.
    pub(crate) fn new(issuer: Issuer, http: reqwest::Client, clock: SharedClock) -> Self {
        Self {
            issuer,
            http,
            current: RwLock::new(Arc::new(KeySet::default())),
            fetching: tokio::sync::Mutex::new(FetchState::default()),
            clock,
            fetches: AtomicU64::new(0),
        }
    }

    /// Fetches discovery and the key set now (at start-up).
    pub(crate) async fn load(&self) -> Result<usize, String> {
        let mut state = self.fetching.lock().await;
        state.last_attempt = Some(self.clock.now());
        self.fetch(&mut state).await?;
        Ok(self.set().keys.len())
    }

    /// The client this cache fetches with (the issuer's CA, timeout, no redirects): the
    /// code flow's token requests use it too, so the issuer is reached one way only.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The issuer's discovery document, fetched at most once. While it has never been had,
    /// asking for it fetches discovery and the key set together (so that a login begun now
    /// finds the keys to check its ID token), at most once per `refetch_interval`.
    pub(crate) async fn discovery(&self) -> Result<Arc<Discovery>, String> {
        let mut state = self.fetching.lock().await;
        if let Some(discovery) = &state.discovery {
            return Ok(discovery.clone());
        }
        let now = self.clock.now();
        if state
            .last_attempt
            .is_some_and(|at| now.saturating_duration_since(at) < self.issuer.refetch_interval)
        {
            return Err("the issuer's discovery document could not be fetched yet".to_owned());
        }
        state.last_attempt = Some(now);
        self.fetch(&mut state).await?;
        state
            .discovery
            .clone()
            .ok_or_else(|| "no discovery document".to_owned())
    }

    /// How many key-set fetches were made (discovery not counted).
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn set(&self) -> Arc<KeySet> {
        self.current
            .read()
            .map(|set| set.clone())
            .unwrap_or_default()
    }

    /// The key named `kid`.
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<Key>, KeyError> {
        let set = self.set();
        if set.keys.contains_key(kid) {
            if set.fetched_at.is_none_or(|at| {
                self.clock.now().saturating_duration_since(at) >= self.issuer.keys_max_age
            }) {
                self.refresh_stale().await;
            }
            return self.set().keys.get(kid).cloned().ok_or(KeyError::Unknown);
        }
        // Single flight: every token with an unknown kid waits here for the one fetch.
        let mut state = self.fetching.lock().await;
        let set = self.set();
        if let Some(key) = set.keys.get(kid) {
            return Ok(key.clone());
        }
        let never_loaded = set.fetched_at.is_none();
        let now = self.clock.now();
        if state
            .last_attempt
            .is_some_and(|at| now.saturating_duration_since(at) < self.issuer.refetch_interval)
        {
            return Err(if never_loaded {
                KeyError::Unavailable("no keys fetched yet".to_owned())
            } else {
                KeyError::Unknown
            });
        }
        state.last_attempt = Some(now);
        match self.fetch(&mut state).await {
            Ok(()) => self.set().keys.get(kid).cloned().ok_or(KeyError::Unknown),
            Err(e) => {
                tracing::warn!(issuer = %self.issuer.issuer, error = %e, "could not fetch the issuer's keys");
                Err(KeyError::Unavailable(e))
            }
        }
    }

    /// Fetches a stale set again unless a fetch is running or one was tried within the
    /// refetch interval; a failure keeps the keys at hand.
    async fn refresh_stale(&self) {
        let Ok(mut state) = self.fetching.try_lock() else {
            return;
        };
        let now = self.clock.now();
        if state
            .last_attempt
            .is_some_and(|at| now.saturating_duration_since(at) < self.issuer.refetch_interval)
        {
            return;
        }
        state.last_attempt = Some(now);
        if let Err(e) = self.fetch(&mut state).await {
            tracing::warn!(issuer = %self.issuer.issuer, error = %e, "could not refresh the issuer's keys; keeping the cached ones");
        }
    }

    async fn fetch(&self, state: &mut FetchState) -> Result<(), String> {
        let jwks_uri = match &state.discovery {
            Some(discovery) => discovery.jwks_uri.clone(),
            None => {
                let discovery = Arc::new(self.discover().await?);
                state.discovery = Some(discovery.clone());
                discovery.jwks_uri.clone()
            }
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                continue;
            }
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let algorithm = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            match DecodingKey::from_jwk(&jwk) {
                Ok(decoding) => {
                    keys.insert(
                        kid,
                        Arc::new(Key {
                            decoding,
                            algorithm,
                        }),
                    );
                }
                Err(e) => {
                    tracing::debug!(issuer = %self.issuer.issuer, kid = %kid, error = %e, "skipping a key that cannot verify");
                }
            }
        }
        if keys.is_empty() {
            return Err(format!("{jwks_uri} holds no usable signing key"));
        }
        let fresh = Arc::new(KeySet {
            keys,
            fetched_at: Some(self.clock.now()),
        });
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(())
    }

    /// The issuer's discovery document, whose `issuer` must be the configured one exactly
    /// (OpenID Connect Discovery §4.3).
    async fn discover(&self) -> Result<Discovery, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.issuer.trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer != self.issuer.issuer {
            return Err(format!(
                "discovery names issuer {:?}, not the configured {:?}",
                doc.issuer, self.issuer.issuer
            ));
        }
        if !doc.jwks_uri.starts_with("https://") {
            return Err(format!("jwks_uri {:?} is not https", doc.jwks_uri));
        }
        Ok(doc)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        response
            .json::<T>()
            .await
            .map_err(|e| format!("{url}: {e}"))
    }
}
