//! The order of the pipeline, written once. Both transports call [`admit`] before their
//! handler and [`complete`] after it; what differs between them is only how they describe a
//! request ([`Call`], [`Inbound`]) and how they answer a [`Refusal`].

use super::draft::Draft;
use super::operation::{Need, Operation};
use super::rate_limit::Class;
use super::refusal::{CredentialError, Refusal};
use crate::AppState;
use natterjack_core::ServiceError;
use natterjack_core::access::SpaceAccess;
use natterjack_core::audit::{AuthMethod, Observed, Phase, Status};
use natterjack_core::auth::{AuthFailure, Credential};
use natterjack_core::domain::{SpaceId, Username};
use natterjack_core::principal::{Caller, Principal};
use natterjack_core::rate::limited_by;
use std::net::IpAddr;

/// What the pipeline needs to know of a request before looking at anything it carries.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The declared operation; `None` for a request no route or method matched (it is
    /// answered 404 or 405 and gets no identity: a handler without a declaration fails
    /// closed).
    pub operation: Option<Operation>,
    /// The rate-limit class, judged without parsing anything.
    pub class: Class,
    /// The client address, if the transport has one (the admin socket has none).
    pub client_ip: Option<IpAddr>,
}

/// What a transport hands the pipeline from a request, each read only when its step comes.
pub trait Inbound {
    /// The transport's own refusal, which every [`Refusal`] converts into.
    type Error: From<Refusal>;

    /// Step 2: the transport's own checks of the request's form (REST: one valid `Host`,
    /// header limits, a JSON body type), before any credential is looked at.
    fn well_formed(&mut self) -> Result<(), Self::Error>;

    /// Step 3: the credential presented, parsed but not verified; `None` when there is none.
    /// Asynchronous because a credential may come in the body (the console's login form),
    /// which is read only now, after the rate limits and the form checks.
    fn credential(
        &mut self,
    ) -> impl Future<Output = Result<Option<Credential>, CredentialError>> + Send;

    /// Step 3: the calling service a credential came through, when it is not the
    /// credential's own holder (gRPC: the client certificate beside a token or password).
    /// Audited beside the principal, who is the one that acts.
    fn via(&self) -> Option<&str> {
        None
    }

    /// Step 6: the space the request addresses, for operations that need permissions on one;
    /// `None` when the request names none (the operation then fails closed).
    fn space(&mut self) -> Result<Option<SpaceId>, Self::Error>;
}

/// What a request that passed every step carries to its handler.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Who is calling (anonymous only for operations that need nothing).
    pub caller: Caller,
    /// The capability on the addressed space, for operations that need one.
    pub access: Option<SpaceAccess>,
}

impl Admitted {
    /// The principal; an operation that declared no need of one fails closed.
    pub fn principal(&self) -> Result<Principal, Refusal> {
        self.caller
            .principal()
            .cloned()
            .ok_or(Refusal::Service(ServiceError::Internal))
    }

    /// The space capability; an operation that declared no space need fails closed.
    pub fn access(&self) -> Result<SpaceAccess, Refusal> {
        self.access
            .clone()
            .ok_or(Refusal::Service(ServiceError::Internal))
    }
}

/// Steps 1 to 6, in order:
///
/// 1. rate limiting by client address, class and globally;
/// 2. the transport's form checks;
/// 3. authentication through the core's identity providers, then the per-principal limit;
/// 4. the operation's need of a principal (an anonymous write is refused before any intent);
/// 5. a durable `intent` record before any state change;
/// 6. access control: the operation's declared permission on the addressed space.
pub async fn admit<I: Inbound>(
    state: &AppState,
    call: &Call,
    inbound: &mut I,
    draft: &mut Draft,
) -> Result<Admitted, I::Error> {
    let transport = draft.transport().as_str();
    let ip = call.client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    // 1
    if let Some(client) = call.client_ip {
        draft.client_ip(client);
        if let Err(refusal) = state.limits.admit(client, call.class).await {
            draft.limited_by = Some(limited_by(&refusal, client, None));
            crate::metrics::rate_limit_refusal(transport, refusal.policy);
            return Err(Refusal::RateLimited(refusal).into());
        }
    }
    // 2
    inbound.well_formed()?;
    // 3
    let caller = match inbound.credential().await {
        Ok(None) => Caller::Anonymous,
        Ok(Some(credential)) => Caller::User({
            draft.via = inbound
                .via()
                .map(|name| natterjack_core::audit::record::clean(name, 64));
            authenticate(state, &credential, ip, draft)
                .await
                .map_err(I::Error::from)?
        }),
        Err(e) => {
            crate::metrics::auth_failure(transport, e.reason());
            return Err(Refusal::BadCredential(e).into());
        }
    };
    let Some(operation) = call.operation else {
        // No declared operation: the router answers 404 or 405, with no identity to use.
        return Ok(Admitted {
            caller: Caller::Anonymous,
            access: None,
        });
    };
    // 4
    let need = operation.need();
    if need == Need::Operator {
        draft.auth_method = AuthMethod::LocalOperator;
    } else if need != Need::Nothing && caller.principal().is_none() {
        return Err(Refusal::Unauthenticated.into());
    }
    // 5
    if operation.changes_state() {
        state
            .audit
            .accepts_changes()
            .map_err(|paused| I::Error::from(Refusal::ChangesPaused(paused)))?;
        state
            .audit
            .record(draft.record(Phase::Intent, None, None))
            .await
            .map_err(|_| I::Error::from(Refusal::Service(ServiceError::Unavailable)))?;
    }
    // 6
    let access = match (need, caller.principal()) {
        (Need::Space(needed), Some(principal)) => {
            let space = inbound
                .space()?
                .ok_or(Refusal::Service(ServiceError::Internal))?;
            let access = state
                .service
                .authorize(principal, space, needed)
                .await
                .map_err(|e| I::Error::from(Refusal::Service(e)))?;
            draft.allowed_because = Some(format!("holds {} on space {space}", access.held()));
            Some(access)
        }
        _ => None,
    };
    Ok(Admitted { caller, access })
}

/// Step 3: a credential becomes a principal, or a refusal that the anomaly monitor sees
/// under the account it claimed.
async fn authenticate(
    state: &AppState,
    credential: &Credential,
    ip: IpAddr,
    draft: &mut Draft,
) -> Result<Principal, Refusal> {
    let transport = draft.transport().as_str();
    draft.auth_method = credential.method();
    match credential {
        Credential::Certificate { name } => {
            // The TLS layer vouched for the name; it is recorded even if it names no user.
            draft.principal = Some(natterjack_core::audit::record::clean(name, 64));
        }
        Credential::Session { token } => {
            draft.session = Some(token.key().short());
        }
        Credential::Password { .. } | Credential::Bearer { .. } => {}
    }
    let claim = |draft: &mut Draft| {
        if matches!(credential, Credential::Password { .. })
            && let Ok(name) = Username::parse(credential.claimed())
        {
            draft.claimed = Some(name.as_str().to_owned());
        }
    };
    match state.authentication.authenticate(credential, ip).await {
        Ok(principal) => {
            draft.principal = Some(principal.username().as_str().to_owned());
            if let Err(refusal) = state.limits.admit_principal(principal.id()).await {
                draft.limited_by = Some(limited_by(
                    &refusal,
                    ip,
                    Some(principal.username().as_str()),
                ));
                crate::metrics::rate_limit_refusal(transport, refusal.policy);
                return Err(Refusal::RateLimited(refusal));
            }
            Ok(principal)
        }
        Err(failure @ (AuthFailure::Wrong | AuthFailure::Refused(_))) => {
            claim(draft);
            let reason = match (credential, failure) {
                (Credential::Bearer { .. }, AuthFailure::Refused(reason)) => reason,
                (Credential::Bearer { .. }, _) => "no issuer takes bearer tokens",
                (Credential::Session { .. }, AuthFailure::Refused(reason)) => reason,
                (Credential::Session { .. }, _) => "sessions are not served here",
                (Credential::Certificate { .. }, _) => "certificate names no known user",
                (Credential::Password { .. }, _) => "wrong username or password",
            };
            crate::metrics::auth_failure(transport, reason);
            draft.refused_because = Some(reason);
            Err(match credential {
                Credential::Bearer { .. } => Refusal::InvalidToken(reason),
                _ => Refusal::Unauthenticated,
            })
        }
        Err(AuthFailure::Limited {
            refusal,
            limited_by,
        }) => {
            claim(draft);
            draft.limited_by = Some(limited_by);
            crate::metrics::rate_limit_refusal(transport, refusal.policy);
            Err(Refusal::RateLimited(refusal))
        }
        Err(AuthFailure::Unavailable(e)) => Err(Refusal::Service(e)),
    }
}

/// The last step, whatever happened: the `complete` record with the final status (queued
/// for the group-commit writer; anything that changed state already has its intent on
/// disk), and the request counted in the metrics.
pub async fn complete(state: &AppState, draft: Draft, status: Status, reason: Option<String>) {
    crate::metrics::request(draft.transport().as_str(), draft.metric_label(), status);
    let reason = if status.decision() == natterjack_core::audit::Decision::Allow {
        None
    } else {
        reason
    };
    let record = draft.record(Phase::Complete, Some(status), reason);
    let observed = Observed {
        claimed: draft.claimed.as_deref(),
        limited_by: draft.limited_by.clone(),
    };
    if let Err(e) = state.audit.submit_observed(record, observed).await {
        tracing::error!(error = %e, "could not write the audit record of a request");
    }
}
