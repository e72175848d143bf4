//! The console's login through an OpenID Connect issuer: the authorization code flow
//! (OpenID Connect Core §3.1) for a web client, with PKCE (RFC 7636, `S256`), `state` and
//! `nonce`. [`CodeFlow::begin`] makes the authorization request and a [`PendingLogin`] that
//! the console keeps server-side, bound to the browser; [`CodeFlow::finish`] checks the
//! callback against it, redeems the code at the token endpoint, verifies the ID token and
//! maps it to a principal exactly as the issuer's bearer tokens map. It uses the issuer's
//! discovery document, key cache and HTTP client of [`super::BearerLogins`]. Claims are read
//! from the ID token only (not the userinfo endpoint).

use super::client_settings::ConsoleClient;
use super::id_token;
use super::keys::Discovery;
use super::pending::PendingLogin;
use super::refusal::{LoginRefusal, token_error};
use super::verify::IssuerVerifier;
use natterjack_core::auth::{AuthFailure, LinkedAccounts};
use natterjack_core::principal::Principal;
use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use url::Url;
use url::form_urlencoded::byte_serialize;
use zeroize::Zeroizing;

/// The scopes asked for: an ID token, with the profile claims that name the account.
const SCOPE: &str = "openid profile";

/// Codes longer than this are refused unsent.
const MAX_CODE_BYTES: usize = 4096;

/// Token responses longer than this are not read further.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// The console's login through one configured issuer. Made by
/// [`BearerLogins::code_flow`](super::BearerLogins::code_flow).
pub struct CodeFlow {
    verifier: Arc<IssuerVerifier>,
    accounts: LinkedAccounts,
    client: ConsoleClient,
}

impl fmt::Debug for CodeFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeFlow")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl CodeFlow {
    pub(crate) fn new(
        verifier: Arc<IssuerVerifier>,
        accounts: LinkedAccounts,
        client: ConsoleClient,
    ) -> Self {
        Self {
            verifier,
            accounts,
            client,
        }
    }

    /// The issuer logged in with (the source of the accounts it links), for audit records.
    pub fn issuer(&self) -> &str {
        &self.client.issuer
    }

    /// The console's client id at the issuer.
    pub fn client_id(&self) -> &str {
        &self.client.client_id
    }

    /// Begins a login that returns to `redirect_uri` (the console's callback, `https://`):
    /// the URL of the issuer's authorization endpoint to send the browser to, and the
    /// pending login to keep until the callback. Fails only when the issuer's discovery
    /// document cannot be had or offers no usable authorization endpoint.
    pub async fn begin(&self, redirect_uri: &str) -> Result<(Url, PendingLogin), LoginRefusal> {
        if !Url::parse(redirect_uri).is_ok_and(|u| u.scheme() == "https") {
            return Err(LoginRefusal::Unavailable(
                "the console's redirect URI is not an https URL",
            ));
        }
        let discovery = self.discovery().await?;
        if discovery
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|methods| !methods.iter().any(|m| m == "S256"))
        {
            return Err(LoginRefusal::Unavailable("issuer does not offer PKCE S256"));
        }
        let mut url = https_endpoint(discovery.authorization_endpoint.as_deref()).ok_or(
            LoginRefusal::Unavailable("issuer offers no https authorization endpoint"),
        )?;
        let pending = PendingLogin::new(redirect_uri)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPE)
            .append_pair("state", pending.state.expose_secret())
            .append_pair("nonce", pending.nonce.expose_secret())
            .append_pair("code_challenge", &pending.code_challenge())
            .append_pair("code_challenge_method", "S256");
        Ok((url, pending))
    }

    /// Finishes `pending` with the callback's `state` and `code`, received at
    /// `redirect_uri`: the `state` must be the pending one (compared in constant time,
    /// before anything is sent to the issuer), the code is redeemed with the PKCE verifier,
    /// and the ID token must verify with the pending `nonce`. The principal is the local
    /// account linked to the issuer and `sub`, as for the issuer's bearer tokens.
    pub async fn finish(
        &self,
        pending: PendingLogin,
        returned_state: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Principal, LoginRefusal> {
        let state_matches: bool = pending
            .state
            .expose_secret()
            .as_bytes()
            .ct_eq(returned_state.as_bytes())
            .into();
        if !state_matches {
            return Err(LoginRefusal::StateMismatch);
        }
        if pending.redirect_uri != redirect_uri {
            return Err(LoginRefusal::RedirectMismatch);
        }
        if code.is_empty() || code.len() > MAX_CODE_BYTES {
            return Err(LoginRefusal::CodeRefused("no usable code"));
        }
        let id_token = self.redeem(&pending, code).await?;
        let verified = id_token::verify(
            &self.verifier,
            &id_token,
            &self.client.client_id,
            &pending.nonce,
        )
        .await?;
        self.verifier
            .principal(&self.accounts, &verified)
            .await
            .map_err(|failure| match failure {
                AuthFailure::Refused(reason) => LoginRefusal::Account(reason),
                AuthFailure::Unavailable(e) => {
                    tracing::warn!(issuer = %self.client.issuer, error = %e, "console login: account store unavailable");
                    LoginRefusal::Unavailable("account store unavailable")
                }
                AuthFailure::Wrong | AuthFailure::Limited { .. } => {
                    LoginRefusal::Account("account refused")
                }
            })
    }

    async fn discovery(&self) -> Result<Arc<Discovery>, LoginRefusal> {
        self.verifier.keys.discovery().await.map_err(|e| {
            tracing::warn!(issuer = %self.client.issuer, error = %e, "console login: issuer discovery unavailable");
            LoginRefusal::Unavailable("issuer discovery unavailable")
        })
    }

    /// The ID token the token endpoint gives for `code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
    async fn redeem(
        &self,
        pending: &PendingLogin,
        code: &str,
    ) -> Result<SecretString, LoginRefusal> {
        let discovery = self.discovery().await?;
        let endpoint = https_endpoint(discovery.token_endpoint.as_deref()).ok_or(
            LoginRefusal::Unavailable("issuer offers no https token endpoint"),
        )?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", pending.redirect_uri.as_str()),
            ("code_verifier", pending.code_verifier.expose_secret()),
        ];
        let mut request = self
            .verifier
            .keys
            .http()
            .post(endpoint)
            .header(ACCEPT, "application/json");
        match &self.client.client_secret {
            None => form.push(("client_id", &self.client.client_id)),
            Some(secret) if secret_in_body(&discovery) => {
                form.push(("client_id", &self.client.client_id));
                form.push(("client_secret", secret.expose_secret()));
            }
            Some(secret) => {
                // client_secret_basic: both parts form-encoded first (RFC 6749 §2.3.1).
                let id: String = byte_serialize(self.client.client_id.as_bytes()).collect();
                let secret: Zeroizing<String> =
                    Zeroizing::new(byte_serialize(secret.expose_secret().as_bytes()).collect());
                request = request.basic_auth(id, Some(secret.as_str()));
            }
        }
        let unreachable = |e: reqwest::Error| {
            tracing::warn!(issuer = %self.client.issuer, error = %e, "console login: token request failed");
            LoginRefusal::Unavailable("issuer token endpoint unreachable")
        };
        let mut response = request.form(&form).send().await.map_err(unreachable)?;
        let status = response.status();
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_TOKEN_RESPONSE_BYTES {
                return Err(LoginRefusal::Unavailable("token response too large"));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            #[derive(serde::Deserialize)]
            struct TokenResponse {
                id_token: Option<SecretString>,
            }
            let parsed: TokenResponse = serde_json::from_slice(&body)
                .map_err(|_| LoginRefusal::Unavailable("token response unreadable"))?;
            return parsed.id_token.ok_or(LoginRefusal::NoIdToken);
        }
        if status == reqwest::StatusCode::BAD_REQUEST || status == reqwest::StatusCode::UNAUTHORIZED
        {
            #[derive(serde::Deserialize)]
            struct ErrorResponse {
                error: String,
            }
            let error = serde_json::from_slice::<ErrorResponse>(&body)
                .map(|e| e.error)
                .unwrap_or_default();
            let reason = token_error(&error);
            tracing::info!(issuer = %self.client.issuer, %status, reason, "console login: the issuer refused the code");
            return Err(LoginRefusal::CodeRefused(reason));
        }
        tracing::warn!(issuer = %self.client.issuer, %status, "console login: token endpoint failed");
        Err(LoginRefusal::Unavailable("issuer token endpoint failed"))
    }
}

/// `endpoint` when it is an https URL.
fn https_endpoint(endpoint: Option<&str>) -> Option<Url> {
    endpoint
        .and_then(|e| Url::parse(e).ok())
        .filter(|u| u.scheme() == "https")
}

/// Whether the client secret goes in the request body (`client_secret_post`): only when the
/// issuer says it does not take `client_secret_basic`, the default (RFC 8414 §2).
fn secret_in_body(discovery: &Discovery) -> bool {
    discovery
        .token_endpoint_auth_methods_supported
        .as_ref()
        .is_some_and(|methods| {
            !methods.iter().any(|m| m == "client_secret_basic")
                && methods.iter().any(|m| m == "client_secret_post")
        })
}
