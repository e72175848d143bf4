//! The escalation rule end to end: the real service layer over a real SQLite store.
//!
//! A grant (or revocation) can never give more than the granter holds. Under `full-only`
//! only holders of `rwd` may change permissions; under `subset` anyone may change a subset of
//! what they hold. These tests never ask `may_change` what to expect: the first one compares
//! against a hand-written table, the second against an oracle that reads only the store.

use natterjack_core::ServiceError;
use natterjack_core::auth::{Authenticator, HashingParams, PasswordHashing, VerificationCache};
use natterjack_core::domain::{Permissions, SpaceId, SpaceName, UserId, Username};
use natterjack_core::policy::GrantPolicy;
use natterjack_core::ports::Store;
use natterjack_core::principal::{Caller, Principal};
use natterjack_core::service::{Service, ServiceSettings};
use natterjack_storage::SqliteStore;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "violet-anvil-73-harbour";

/// The seven non-empty permission sets.
const SETS: [&str; 7] = ["r", "w", "d", "rw", "rd", "wd", "rwd"];

fn p(letters: &str) -> Permissions {
    if letters.is_empty() {
        Permissions::NONE
    } else {
        Permissions::parse(letters).unwrap()
    }
}

fn name(text: &str) -> Username {
    Username::parse(text).unwrap()
}

/// The requests a member holding `granter` may make, written out by hand.
fn allowed(policy: GrantPolicy, granter: &str) -> &'static [&'static str] {
    const EVERYTHING: &[&str] = &["r", "w", "d", "rw", "rd", "wd", "rwd"];
    match (policy, granter) {
        (GrantPolicy::FullOnly, "rwd") => EVERYTHING,
        (GrantPolicy::FullOnly, _) => &[],
        (GrantPolicy::Subset, "r") => &["r"],
        (GrantPolicy::Subset, "w") => &["w"],
        (GrantPolicy::Subset, "d") => &["d"],
        (GrantPolicy::Subset, "rw") => &["r", "w", "rw"],
        (GrantPolicy::Subset, "rd") => &["r", "d", "rd"],
        (GrantPolicy::Subset, "wd") => &["w", "d", "wd"],
        (GrantPolicy::Subset, "rwd") => EVERYTHING,
        (GrantPolicy::Subset, other) => panic!("not a permission set: {other:?}"),
    }
}

/// A migrated database in `dir`, opened as the server opens it.
async fn open_store(dir: &tempfile::TempDir) -> SqliteStore {
    let path = dir.path().join("natterjack.db");
    SqliteStore::migrate(&path, &crate::support::keyring())
        .await
        .unwrap();
    SqliteStore::open(&path, 4, crate::support::keyring())
        .await
        .unwrap()
}

async fn service(store: &Arc<dyn Store>, policy: GrantPolicy) -> Service {
    let hashing = Arc::new(
        PasswordHashing::new(HashingParams::default(), 4, Duration::from_secs(5)).unwrap(),
    );
    let auth = Authenticator::new(
        store.clone(),
        hashing,
        VerificationCache::new(Duration::from_secs(60), 1000),
    )
    .await
    .unwrap();
    Service::new(
        store.clone(),
        auth,
        ServiceSettings {
            grant_policy: policy,
            self_registration: true,
        },
    )
}

/// Registers `user` through the service and logs in, as a client would.
async fn sign_up(service: &Service, user: &str) -> Principal {
    service
        .register(
            &Caller::Anonymous,
            None,
            name(user),
            SecretString::from(PASSWORD),
        )
        .await
        .unwrap();
    service
        .authenticate(user, &SecretString::from(PASSWORD))
        .await
        .unwrap()
}

async fn user_id(store: &Arc<dyn Store>, user: &str) -> UserId {
    store.find_user(&name(user)).await.unwrap().unwrap().id
}

/// A new space created by `owner`, who then grants each `(user, permissions)` pair.
async fn fresh_space(
    service: &Service,
    owner: &Principal,
    grants: &[(&Username, Permissions)],
) -> SpaceId {
    let space = service
        .create_space(owner, SpaceName::parse("pond").unwrap(), None)
        .await
        .unwrap()
        .id;
    let access = service
        .authorize(owner, space, Permissions::NONE)
        .await
        .unwrap();
    for (user, permissions) in grants {
        service.grant(&access, user, *permissions).await.unwrap();
    }
    space
}

#[tokio::test]
async fn every_granter_and_request_pair_is_decided_by_the_policy_through_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open_store(&dir).await;
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let full_only = service(&store, GrantPolicy::FullOnly).await;
    let subset = service(&store, GrantPolicy::Subset).await;
    let (owner, granter, _) = tokio::join!(
        sign_up(&subset, "owner"),
        sign_up(&subset, "granter"),
        sign_up(&subset, "target"),
    );
    let granter_name = name("granter");
    let target = name("target");
    let (owner_id, granter_id, target_id) = (
        user_id(&store, "owner").await,
        user_id(&store, "granter").await,
        user_id(&store, "target").await,
    );

    let mut checked = 0;
    let mut permitted = 0;
    for (policy, service) in [
        (GrantPolicy::FullOnly, &full_only),
        (GrantPolicy::Subset, &subset),
    ] {
        for g in SETS {
            for r in SETS {
                let expect_ok = allowed(policy, g).contains(&r);

                // Granting `r` to someone who holds nothing yet.
                let case = format!("{policy:?}: granter holding {g:?} grants {r:?}");
                let space = fresh_space(service, &owner, &[(&granter_name, p(g))]).await;
                let access = service
                    .authorize(&granter, space, Permissions::NONE)
                    .await
                    .unwrap();
                assert_eq!(access.held(), p(g), "{case}");
                let outcome = service.grant(&access, &target, p(r)).await;
                let now = store.permissions_of(space, target_id).await.unwrap();
                if expect_ok {
                    assert_eq!(outcome.unwrap().permissions, p(r), "{case}");
                    assert_eq!(now, p(r), "{case}");
                    permitted += 1;
                } else {
                    assert!(
                        matches!(outcome, Err(ServiceError::Forbidden(_))),
                        "{case}: {outcome:?}"
                    );
                    assert_eq!(now, Permissions::NONE, "{case}");
                }
                assert_eq!(
                    store.permissions_of(space, granter_id).await.unwrap(),
                    p(g),
                    "{case}"
                );
                assert_eq!(
                    store.permissions_of(space, owner_id).await.unwrap(),
                    Permissions::ALL,
                    "{case}"
                );
                checked += 1;

                // Revoking `r` from someone who holds exactly `r`, named or as "everything".
                for removing in [Some(p(r)), None] {
                    let case = format!(
                        "{policy:?}: granter holding {g:?} revokes {removing:?} from a holder of {r:?}"
                    );
                    let space =
                        fresh_space(service, &owner, &[(&granter_name, p(g)), (&target, p(r))])
                            .await;
                    let access = service
                        .authorize(&granter, space, Permissions::NONE)
                        .await
                        .unwrap();
                    let outcome = service.revoke(&access, &target, removing).await;
                    let now = store.permissions_of(space, target_id).await.unwrap();
                    if expect_ok {
                        assert_eq!(outcome, Ok(Permissions::NONE), "{case}");
                        assert_eq!(now, Permissions::NONE, "{case}");
                        permitted += 1;
                    } else {
                        assert!(
                            matches!(outcome, Err(ServiceError::Forbidden(_))),
                            "{case}: {outcome:?}"
                        );
                        assert_eq!(now, p(r), "{case}");
                    }
                    assert_eq!(
                        store.permissions_of(space, granter_id).await.unwrap(),
                        p(g),
                        "{case}"
                    );
                    assert_eq!(
                        store.permissions_of(space, owner_id).await.unwrap(),
                        Permissions::ALL,
                        "{case}"
                    );
                    checked += 1;
                }
            }
        }
    }
    // 2 policies x 49 pairs x (1 grant + 2 revocations); full-only allows 7 pairs, subset 19.
    assert_eq!(checked, 2 * 49 * 3);
    assert_eq!(permitted, (7 + 19) * 3);
    sqlite.close().await;
}

/// The users of the property test; the first one creates the space.
const USERS: [&str; 5] = ["owner", "alice", "bob", "carol", "dave"];
const OWNER: usize = 0;

#[derive(Debug, Clone)]
enum Op {
    Grant {
        actor: usize,
        target: usize,
        permissions: Permissions,
    },
    /// `None` revokes everything the target holds.
    Revoke {
        actor: usize,
        target: usize,
        permissions: Option<Permissions>,
    },
}

/// Any of the eight sets (the empty one included), with `rwd` drawn more often so that
/// full-only sequences also see members other than the owner who may grant.
fn any_set() -> impl Strategy<Value = Permissions> {
    prop_oneof![
        3 => (0i64..8).prop_map(|bits| Permissions::from_bits(bits).unwrap()),
        1 => Just(Permissions::ALL),
    ]
}

/// Any user as target; as actor, the owner more often, so that sequences build up members.
fn any_actor() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(OWNER), 2 => 0..USERS.len()]
}

fn any_op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    prop_oneof![
        (any_actor(), user.clone(), any_set()).prop_map(|(actor, target, permissions)| {
            Op::Grant {
                actor,
                target,
                permissions,
            }
        }),
        (any_actor(), user, proptest::option::of(any_set())).prop_map(
            |(actor, target, permissions)| Op::Revoke {
                actor,
                target,
                permissions,
            }
        ),
    ]
}

/// Whether a member holding `held` may change `requested` under `policy`, from the rule as
/// the module doc states it (`full-only`: only `rwd` holders; `subset`: only what they hold),
/// in bit arithmetic rather than the library's own set operations.
fn entitled(policy: GrantPolicy, held: Permissions, requested: Permissions) -> bool {
    match policy {
        GrantPolicy::FullOnly => held.bits() == 0b111,
        GrantPolicy::Subset => requested.bits() & !held.bits() == 0,
    }
}

async fn holdings(store: &Arc<dyn Store>, space: SpaceId, ids: &[UserId]) -> Vec<Permissions> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(store.permissions_of(space, *id).await.unwrap());
    }
    out
}

async fn check_sequence(
    store: &Arc<dyn Store>,
    policy: GrantPolicy,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let service = service(store, policy).await;
    let (owner, alice, bob, carol, dave) = tokio::join!(
        sign_up(&service, USERS[0]),
        sign_up(&service, USERS[1]),
        sign_up(&service, USERS[2]),
        sign_up(&service, USERS[3]),
        sign_up(&service, USERS[4]),
    );
    let principals = [owner, alice, bob, carol, dave];
    let names: Vec<Username> = USERS.iter().map(|u| name(u)).collect();
    let ids: Vec<UserId> = principals.iter().map(Principal::id).collect();
    let space = service
        .create_space(&principals[OWNER], SpaceName::parse("pond").unwrap(), None)
        .await
        .unwrap()
        .id;

    for (step, op) in ops.iter().enumerate() {
        let pre = holdings(store, space, &ids).await;
        let (actor, target, is_grant, requested) = match op {
            Op::Grant {
                actor,
                target,
                permissions,
            } => (*actor, *target, true, *permissions),
            Op::Revoke {
                actor,
                target,
                permissions,
            } => (*actor, *target, false, permissions.unwrap_or(pre[*target])),
        };
        let legitimate = !requested.is_empty()
            && entitled(policy, pre[actor], requested)
            && (is_grant || (target != OWNER && !pre[target].is_empty()));

        let outcome: Result<Permissions, ServiceError> = async {
            let access = service
                .authorize(&principals[actor], space, Permissions::NONE)
                .await?;
            match op {
                Op::Grant { permissions, .. } => service
                    .grant(&access, &names[target], *permissions)
                    .await
                    .map(|m| m.permissions),
                Op::Revoke { permissions, .. } => {
                    service.revoke(&access, &names[target], *permissions).await
                }
            }
        }
        .await;
        let post = holdings(store, space, &ids).await;
        let case = format!(
            "step {step}: {op:?} under {policy:?}, before {pre:?}, after {post:?}, got {outcome:?}"
        );

        // A legitimate change happens exactly as asked, to the target alone; (a) an
        // illegitimate one is refused and changes nothing.
        if legitimate {
            let mut expected = pre.clone();
            expected[target] = Permissions::from_bits(if is_grant {
                pre[target].bits() | requested.bits()
            } else {
                pre[target].bits() & !requested.bits()
            })
            .unwrap();
            prop_assert_eq!(
                outcome.as_ref().ok(),
                Some(&expected[target]),
                "legitimate change refused or misreported: {}",
                case
            );
            prop_assert_eq!(&post, &expected, "legitimate change misapplied: {}", case);
        } else {
            prop_assert!(
                matches!(
                    outcome,
                    Err(ServiceError::Forbidden(_) | ServiceError::NotFound(_))
                ),
                "illegitimate change was not refused: {}",
                case
            );
            prop_assert_eq!(&post, &pre, "illegitimate change altered the ACL: {}", case);
        }

        // (b) Nobody gains anything except what an entitled granter just granted them.
        for (user, (before, after)) in pre.iter().zip(&post).enumerate() {
            let granted_now = if legitimate && is_grant && user == target {
                requested.bits()
            } else {
                0
            };
            prop_assert!(
                after.bits() & !(before.bits() | granted_now) == 0,
                "{} gained permissions nobody entitled granted: {}",
                USERS[user],
                case
            );
        }

        // (c) The owner always keeps rwd.
        prop_assert_eq!(post[OWNER], Permissions::ALL, "owner lost rwd: {}", case);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn nobody_ever_holds_a_permission_that_was_not_granted_by_someone_entitled_to_grant_it(
        policy in prop_oneof![Just(GrantPolicy::FullOnly), Just(GrantPolicy::Subset)],
        ops in proptest::collection::vec(any_op(), 1..30),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite = open_store(&dir).await;
            let store: Arc<dyn Store> = Arc::new(sqlite.clone());
            let verdict = check_sequence(&store, policy, &ops).await;
            sqlite.close().await;
            verdict
        })?;
    }
}
