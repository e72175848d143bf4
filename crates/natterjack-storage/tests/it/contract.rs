//! One storage contract, run against both backends: every case is written once, over any
//! `Store + AuditStore`, and the macro at the bottom runs it on a fresh SQLite file
//! (`sqlite::<case>`) and on a fresh PostgreSQL database as the app role
//! (`postgres::<case>`), so the two cannot drift apart unnoticed.

use natterjack_core::audit::{
    AuditQuery, AuditRecord, AuditStore, AuthMethod, Decision, Phase, Status, StoredAuditRecord,
    Transport,
};
use natterjack_core::domain::{
    Limit, MessageId, MessageText, Permissions, SpaceName, Timestamp, UserId, Username,
};
use natterjack_core::ports::{MessagePage, Store, StoreError};
use natterjack_core::session::{NewSession, SessionKey, SessionStore};
use natterjack_storage::SqliteStore;
use secrecy::{ExposeSecret, SecretString};

/// Fresh SQLite store in `dir`, migrated and opened as the server does.
async fn sqlite_store(dir: &tempfile::TempDir) -> SqliteStore {
    let path = dir.path().join("natterjack.db");
    SqliteStore::migrate(&path, &crate::support::keyring())
        .await
        .unwrap();
    SqliteStore::open(&path, 4, crate::support::keyring())
        .await
        .unwrap()
}

fn name(text: &str) -> Username {
    Username::parse(text).unwrap()
}

fn limit(n: u8) -> Limit {
    Limit::parse(&n.to_string()).unwrap()
}

async fn user(store: &impl Store, username: &str) -> UserId {
    store
        .create_user(&name(username), "$argon2id$stub")
        .await
        .unwrap()
        .id
}

fn audit(id: i64, time: i64, principal: Option<&str>) -> StoredAuditRecord {
    StoredAuditRecord {
        id,
        record: AuditRecord {
            time: Timestamp::from_micros(time),
            request_id: format!("req-{id}"),
            phase: if id % 2 == 0 {
                Phase::Complete
            } else {
                Phase::Intent
            },
            transport: Transport::Rest,
            client_ip: "192.0.2.7".to_owned(),
            principal: principal.map(str::to_owned),
            auth_method: if principal.is_some() {
                AuthMethod::Basic
            } else {
                AuthMethod::None
            },
            operation: "POST /spaces/{id}/messages".to_owned(),
            target: format!("id={id}"),
            status: (id % 2 == 0).then_some(Status::Http(201)),
            decision: if id % 2 == 0 {
                Decision::Allow
            } else {
                Decision::Pending
            },
            reason: (id == 3).then(|| "because".to_owned()),
            duration_us: id * 10,
            count: None,
        },
        mac: [u8::try_from(id).unwrap(); 32],
    }
}

fn ids(records: &[StoredAuditRecord]) -> Vec<i64> {
    records.iter().map(|r| r.id).collect()
}

/// The session key numbered `n` (its hash bytes all `n`).
fn key(n: u8) -> SessionKey {
    SessionKey::from_bytes(&[n; 32]).unwrap()
}

/// A session of `user` under [`key`] `n`, opened at `at` microseconds.
fn new_session(n: u8, user: UserId, at: i64) -> NewSession {
    NewSession {
        key: key(n),
        user,
        method: "password".to_owned(),
        credential_mark: [n; 16],
        admin: false,
        granted_admin: n == 2,
        created_at: Timestamp::from_micros(at),
        client_ip: format!("192.0.2.{n}"),
    }
}

fn page(limit_n: u8) -> AuditQuery {
    AuditQuery {
        decision: None,
        since: None,
        until: None,
        principal: None,
        after: None,
        limit: limit(limit_n),
    }
}

/// The cases, each written once for every backend.
mod cases {
    use super::*;

    pub async fn usernames_are_unique_and_found_whatever_their_case(
        store: &(impl Store + AuditStore),
    ) {
        let created = store
            .create_user(&name("Alice"), "$argon2id$alice")
            .await
            .unwrap();
        assert_eq!(created.username.as_str(), "Alice");
        assert!(!created.admin);

        let found = store.find_user(&name("aLICE")).await.unwrap().unwrap();
        assert_eq!(found.id, created.id);
        assert_eq!(found.username.as_str(), "Alice");
        assert_eq!(found.password_hash, "$argon2id$alice");
        assert!(store.find_user(&name("bob")).await.unwrap().is_none());

        let again = store.create_user(&name("ALICE"), "$argon2id$x").await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    }

    pub async fn a_new_password_hash_and_admin_flag_are_seen_by_the_next_lookup(
        store: &(impl Store + AuditStore),
    ) {
        let alice = user(store, "alice").await;
        store
            .set_password_hash(alice, "$argon2id$rehashed")
            .await
            .unwrap();
        store.set_admin(alice, true).await.unwrap();
        let found = store.find_user(&name("alice")).await.unwrap().unwrap();
        assert_eq!(found.password_hash, "$argon2id$rehashed");
        assert!(found.admin);
        store.set_admin(alice, false).await.unwrap();
        assert!(
            !store
                .find_user(&name("alice"))
                .await
                .unwrap()
                .unwrap()
                .admin
        );
    }

    pub async fn an_external_identity_links_to_one_account_and_a_new_one_has_no_password(
        store: &(impl Store + AuditStore),
    ) {
        let issuer = "https://id.example";
        assert!(
            store
                .find_linked_user(issuer, "sub-1")
                .await
                .unwrap()
                .is_none()
        );
        let created = store
            .create_linked_user(&name("carol"), issuer, "sub-1")
            .await
            .unwrap();
        assert!(!created.has_local_password());
        let found = store
            .find_linked_user(issuer, "sub-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, created.id);
        // The same subject of another source is another identity.
        assert!(
            store
                .find_linked_user("https://other.example", "sub-1")
                .await
                .unwrap()
                .is_none()
        );
        // A second link of the same identity, or a new account with a taken name, conflicts
        // and leaves nothing half made.
        let alice = user(store, "alice").await;
        let again = store.link_identity(alice, issuer, "sub-1").await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
        let taken = store
            .create_linked_user(&name("ALICE"), issuer, "sub-2")
            .await;
        assert!(matches!(taken, Err(StoreError::Conflict)), "{taken:?}");
        assert!(
            store
                .find_linked_user(issuer, "sub-2")
                .await
                .unwrap()
                .is_none()
        );
        // An operator's link makes an existing account the identity's.
        store.link_identity(alice, issuer, "sub-2").await.unwrap();
        let linked = store
            .find_linked_user(issuer, "sub-2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(linked.id, alice);
        assert!(linked.has_local_password());
    }

    pub async fn the_creator_of_a_space_holds_every_permission_on_it(
        store: &(impl Store + AuditStore),
    ) {
        let alice = user(store, "alice").await;
        let space = store
            .create_space(&SpaceName::parse("general").unwrap(), alice)
            .await
            .unwrap();
        assert_eq!(space.name.as_str(), "general");
        assert_eq!(space.owner.as_str(), "alice");
        assert_eq!(
            store.permissions_of(space.id, alice).await.unwrap(),
            Permissions::ALL
        );
        let members = store.members_of(space.id).await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].username.as_str(), "alice");
        assert_eq!(members[0].permissions, Permissions::ALL);

        let found = store.find_space(space.id).await.unwrap().unwrap();
        assert_eq!(found.id, space.id);
        assert_eq!(found.created_at, space.created_at);
        let missing = natterjack_core::domain::SpaceId::from_i64(space.id.get() + 1000).unwrap();
        assert!(store.find_space(missing).await.unwrap().is_none());
        assert_eq!(
            store.permissions_of(missing, alice).await.unwrap(),
            Permissions::NONE
        );
    }

    pub async fn spaces_of_lists_only_member_spaces_newest_first(
        store: &(impl Store + AuditStore),
    ) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let first = store
            .create_space(&SpaceName::parse("first").unwrap(), alice)
            .await
            .unwrap();
        let second = store
            .create_space(&SpaceName::parse("second").unwrap(), alice)
            .await
            .unwrap();
        let bobs = store
            .create_space(&SpaceName::parse("bobs").unwrap(), bob)
            .await
            .unwrap();
        let listed: Vec<_> = store
            .spaces_of(alice)
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, [second.id, first.id]);

        store
            .grant(bobs.id, alice, Permissions::READ, bob)
            .await
            .unwrap();
        let listed: Vec<_> = store
            .spaces_of(alice)
            .await
            .unwrap()
            .iter()
            .map(|s| (s.id, s.owner.as_str().to_owned()))
            .collect();
        assert_eq!(
            listed,
            [
                (bobs.id, "bob".to_owned()),
                (second.id, "alice".to_owned()),
                (first.id, "alice".to_owned())
            ]
        );
    }

    pub async fn grants_accumulate_and_list_members_by_name(store: &(impl Store + AuditStore)) {
        let owner = user(store, "Zed").await;
        let carol = user(store, "carol").await;
        let bob = user(store, "Bob").await;
        let space = store
            .create_space(&SpaceName::parse("general").unwrap(), owner)
            .await
            .unwrap();
        let held = store
            .grant(space.id, carol, Permissions::READ, owner)
            .await
            .unwrap();
        assert_eq!(held, Permissions::READ);
        let held = store
            .grant(space.id, carol, Permissions::WRITE, owner)
            .await
            .unwrap();
        assert_eq!(held, Permissions::parse("rw").unwrap());
        let held = store
            .grant(space.id, carol, Permissions::READ, owner)
            .await
            .unwrap();
        assert_eq!(held, Permissions::parse("rw").unwrap());
        assert_eq!(
            store.permissions_of(space.id, carol).await.unwrap(),
            Permissions::parse("rw").unwrap()
        );
        store
            .grant(space.id, bob, Permissions::DELETE, owner)
            .await
            .unwrap();

        let members: Vec<_> = store
            .members_of(space.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.username.as_str().to_owned(), m.permissions.to_string()))
            .collect();
        // By name, case-insensitively.
        assert_eq!(
            members,
            [
                ("Bob".to_owned(), Permissions::DELETE.to_string()),
                ("carol".to_owned(), "rw".to_owned()),
                ("Zed".to_owned(), "rwd".to_owned()),
            ]
        );
    }

    pub async fn a_partial_revoke_keeps_the_rest_and_a_full_revoke_ends_the_membership(
        store: &(impl Store + AuditStore),
    ) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let space = store
            .create_space(&SpaceName::parse("general").unwrap(), alice)
            .await
            .unwrap();
        store
            .grant(space.id, bob, Permissions::ALL, alice)
            .await
            .unwrap();

        let left = store
            .revoke(space.id, bob, Permissions::DELETE)
            .await
            .unwrap();
        assert_eq!(left, Permissions::parse("rw").unwrap());
        assert_eq!(store.permissions_of(space.id, bob).await.unwrap(), left);

        let left = store
            .revoke(space.id, bob, Permissions::parse("rw").unwrap())
            .await
            .unwrap();
        assert_eq!(left, Permissions::NONE);
        assert_eq!(
            store.permissions_of(space.id, bob).await.unwrap(),
            Permissions::NONE
        );
        let members: Vec<_> = store
            .members_of(space.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.username.as_str().to_owned())
            .collect();
        assert_eq!(members, ["alice"]);
        assert!(store.spaces_of(bob).await.unwrap().is_empty());

        // Revoking from a non-member changes nothing and holds nothing.
        let left = store
            .revoke(space.id, bob, Permissions::READ)
            .await
            .unwrap();
        assert_eq!(left, Permissions::NONE);
    }

    pub async fn messages_come_newest_first_paged_by_since_after_and_limit(
        store: &(impl Store + AuditStore),
    ) {
        let alice = user(store, "alice").await;
        let space = store
            .create_space(&SpaceName::parse("general").unwrap(), alice)
            .await
            .unwrap();
        let mut posted = Vec::new();
        for n in 1..=5 {
            let m = store
                .insert_message(
                    space.id,
                    alice,
                    &MessageText::parse(&format!("message {n}")).unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(m.author.as_str(), "alice");
            assert_eq!(m.space, space.id);
            assert_eq!(m.body.as_str(), format!("message {n}"));
            posted.push(m);
        }
        let read = |since: Option<Timestamp>, after: Option<MessageId>, n: u8| {
            let page = MessagePage {
                since,
                after,
                limit: limit(n),
            };
            async move {
                store
                    .messages_in(space.id, page)
                    .await
                    .unwrap()
                    .iter()
                    .map(|m| m.id)
                    .collect::<Vec<_>>()
            }
        };
        let all: Vec<_> = posted.iter().rev().map(|m| m.id).collect();
        assert_eq!(read(None, None, 100).await, all);
        assert_eq!(read(None, None, 2).await, all[..2]);
        assert_eq!(read(None, Some(all[1]), 2).await, all[2..4]);
        assert_eq!(read(None, Some(all[4]), 2).await, Vec::<MessageId>::new());

        // `since` is inclusive; compare with the stored times, which may repeat.
        let since = posted[2].created_at;
        let expected: Vec<_> = posted
            .iter()
            .rev()
            .filter(|m| m.created_at >= since)
            .map(|m| m.id)
            .collect();
        assert!(expected.contains(&posted[2].id));
        assert_eq!(read(Some(since), None, 100).await, expected);

        let found = store
            .find_message(space.id, posted[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.body.as_str(), "message 1");
        assert_eq!(found.created_at, posted[0].created_at);
        assert!(store.delete_message(space.id, posted[0].id).await.unwrap());
        assert!(!store.delete_message(space.id, posted[0].id).await.unwrap());
        assert!(
            store
                .find_message(space.id, posted[0].id)
                .await
                .unwrap()
                .is_none()
        );
    }

    pub async fn a_since_page_is_the_same_whether_few_or_most_messages_match(
        store: &(impl Store + AuditStore),
    ) {
        let alice = user(store, "alice").await;
        let space = store
            .create_space(&SpaceName::parse("busy").unwrap(), alice)
            .await
            .unwrap();
        // More messages than the store's threshold for reading a `since` by time.
        let mut posted = Vec::new();
        for n in 0..1100 {
            let text = MessageText::parse(&format!("m{n}")).unwrap();
            posted.push(store.insert_message(space.id, alice, &text).await.unwrap());
        }
        let read = |since: Timestamp, after: Option<MessageId>, n: u8| {
            let page = MessagePage {
                since: Some(since),
                after,
                limit: limit(n),
            };
            async move {
                let found = store.messages_in(space.id, page).await.unwrap();
                found.iter().map(|m| m.id).collect::<Vec<_>>()
            }
        };
        let expected = |since: Timestamp, after: Option<MessageId>, n: usize| {
            posted
                .iter()
                .rev()
                .filter(|m| m.created_at >= since && after.is_none_or(|a| m.id < a))
                .take(n)
                .map(|m| m.id)
                .collect::<Vec<_>>()
        };
        for since in [posted[1090].created_at, posted[20].created_at] {
            assert_eq!(read(since, None, 100).await, expected(since, None, 100));
            let cursor = Some(posted[1095].id);
            assert_eq!(read(since, cursor, 7).await, expected(since, cursor, 7));
        }
        let later = Timestamp::from_micros(posted[1099].created_at.micros() + 1);
        assert_eq!(read(later, None, 100).await, Vec::<MessageId>::new());
    }

    pub async fn a_message_is_out_of_reach_through_another_spaces_id(
        store: &(impl Store + AuditStore),
    ) {
        let alice = user(store, "alice").await;
        let mallory = user(store, "mallory").await;
        let secret = store
            .create_space(&SpaceName::parse("secret").unwrap(), alice)
            .await
            .unwrap();
        let own = store
            .create_space(&SpaceName::parse("own").unwrap(), mallory)
            .await
            .unwrap();
        let message = store
            .insert_message(secret.id, alice, &MessageText::parse("private").unwrap())
            .await
            .unwrap();

        assert!(
            store
                .find_message(own.id, message.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.delete_message(own.id, message.id).await.unwrap());
        assert!(
            store
                .find_message(secret.id, message.id)
                .await
                .unwrap()
                .is_some()
        );
        let page = MessagePage {
            since: None,
            after: None,
            limit: limit(100),
        };
        assert!(store.messages_in(own.id, page).await.unwrap().is_empty());
    }

    pub async fn an_audit_batch_reads_back_by_head_in_order_and_filtered_pages(
        store: &(impl Store + AuditStore),
    ) {
        assert!(store.audit_head().await.unwrap().is_none());
        assert!(store.audit_in_order(0, 10).await.unwrap().is_empty());

        let batch: Vec<_> = (1..=6)
            .map(|id| {
                let who = match id {
                    2 | 5 => Some("Alice"),
                    4 => Some("alice"),
                    6 => Some("bob"),
                    _ => None,
                };
                audit(id, 1_000 * id, who)
            })
            .collect();
        store.append_audit(&batch[..2]).await.unwrap();
        store.append_audit(&batch[2..]).await.unwrap();
        store.append_audit(&[]).await.unwrap();

        let head = store.audit_head().await.unwrap().unwrap();
        assert_eq!(head.id, 6);
        assert_eq!(head.mac, [6; 32]);

        // Every field survives the round trip, oldest first.
        assert_eq!(store.audit_in_order(0, 100).await.unwrap(), batch);
        assert_eq!(ids(&store.audit_in_order(2, 3).await.unwrap()), [3, 4, 5]);

        assert_eq!(
            ids(&store.audit_page(&page(100)).await.unwrap()),
            [6, 5, 4, 3, 2, 1]
        );
        assert_eq!(ids(&store.audit_page(&page(2)).await.unwrap()), [6, 5]);
        let q = AuditQuery {
            after: Some(5),
            ..page(2)
        };
        assert_eq!(ids(&store.audit_page(&q).await.unwrap()), [4, 3]);
        let q = AuditQuery {
            since: Some(Timestamp::from_micros(2_000)),
            until: Some(Timestamp::from_micros(5_000)),
            ..page(100)
        };
        assert_eq!(ids(&store.audit_page(&q).await.unwrap()), [4, 3, 2]);
        let q = AuditQuery {
            principal: Some(name("ALICE")),
            ..page(100)
        };
        assert_eq!(ids(&store.audit_page(&q).await.unwrap()), [5, 4, 2]);
        let q = AuditQuery {
            principal: Some(name("alice")),
            after: Some(5),
            since: Some(Timestamp::from_micros(3_000)),
            ..page(100)
        };
        assert_eq!(ids(&store.audit_page(&q).await.unwrap()), [4]);
    }

    pub async fn an_audit_batch_repeating_a_stored_id_conflicts_and_stores_nothing(
        store: &(impl Store + AuditStore),
    ) {
        store
            .append_audit(&[audit(1, 1, None), audit(2, 2, Some("alice"))])
            .await
            .unwrap();
        let clash = [
            audit(3, 3, None),
            audit(2, 4, Some("mallory")),
            audit(4, 4, None),
        ];
        let result = store.append_audit(&clash).await;
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
        assert_eq!(ids(&store.audit_in_order(0, 100).await.unwrap()), [1, 2]);
        assert_eq!(store.audit_head().await.unwrap().unwrap().id, 2);
        // The writer retries with the next free ids.
        store
            .append_audit(&[audit(3, 3, None), audit(4, 4, None)])
            .await
            .unwrap();
        assert_eq!(store.audit_head().await.unwrap().unwrap().id, 4);
    }

    pub async fn an_exclusive_append_links_after_the_newest_two_and_a_refusal_stores_nothing(
        store: &(impl Store + AuditStore),
    ) {
        let mut seen = Vec::new();
        store
            .append_audit_exclusive(&mut |newest| {
                seen.push(ids(newest));
                Ok(vec![audit(1, 1, None)])
            })
            .await
            .unwrap();
        store
            .append_audit(&[audit(2, 2, None), audit(3, 3, None)])
            .await
            .unwrap();
        store
            .append_audit_exclusive(&mut |newest| {
                seen.push(ids(newest));
                Ok(vec![audit(4, 4, None), audit(5, 5, None)])
            })
            .await
            .unwrap();
        // An empty log, then the newest two records, oldest first.
        assert_eq!(seen, [vec![], vec![2, 3]]);
        assert_eq!(
            ids(&store.audit_in_order(0, 100).await.unwrap()),
            [1, 2, 3, 4, 5]
        );

        let refused = store
            .append_audit_exclusive(&mut |_| Err("another key".to_owned()))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Internal(_))),
            "{refused:?}"
        );
        let clash = store
            .append_audit_exclusive(&mut |_| Ok(vec![audit(6, 6, None), audit(5, 6, None)]))
            .await;
        assert!(matches!(clash, Err(StoreError::Conflict)), "{clash:?}");
        assert_eq!(store.audit_head().await.unwrap().unwrap().id, 5);
        // Nothing is left locked: the next plain append goes through.
        store.append_audit(&[audit(6, 6, None)]).await.unwrap();
        assert_eq!(store.audit_head().await.unwrap().unwrap().id, 6);
    }

    pub async fn an_alert_record_is_stored_and_read_back_as_an_alert(
        store: &(impl Store + AuditStore),
    ) {
        let mut alert = audit(1, 1, Some("alice"));
        alert.record.phase = Phase::Alert;
        alert.record.decision = Decision::Alert;
        alert.record.status = None;
        store
            .append_audit(std::slice::from_ref(&alert))
            .await
            .unwrap();
        assert_eq!(store.audit_in_order(0, 10).await.unwrap(), [alert]);
    }

    pub async fn a_summary_record_keeps_its_count_and_a_count_on_another_record_is_refused(
        store: &(impl Store + AuditStore),
    ) {
        let mut summary = audit(1, 1, None);
        summary.record.phase = Phase::Summary;
        summary.record.decision = Decision::Deny;
        summary.record.status = Some(Status::Http(429));
        summary.record.count = Some(4_000_000_000);
        store
            .append_audit(std::slice::from_ref(&summary))
            .await
            .unwrap();
        assert_eq!(store.audit_in_order(0, 10).await.unwrap(), [summary]);
        // Only a summary counts refusals: the schema refuses a count anywhere else.
        let mut counted = audit(2, 2, None);
        counted.record.count = Some(3);
        assert!(
            store
                .append_audit(std::slice::from_ref(&counted))
                .await
                .is_err()
        );
        assert_eq!(store.audit_in_order(0, 10).await.unwrap().len(), 1);
    }

    pub async fn an_export_cursor_starts_at_zero_and_only_moves_forward(
        store: &(impl Store + AuditStore),
    ) {
        assert_eq!(store.export_cursor("siem").await.unwrap(), 0);
        store.advance_export_cursor("siem", 7).await.unwrap();
        store.advance_export_cursor("siem", 5).await.unwrap();
        assert_eq!(store.export_cursor("siem").await.unwrap(), 7);
        store.advance_export_cursor("siem", 9).await.unwrap();
        assert_eq!(store.export_cursor("siem").await.unwrap(), 9);
        // Each sink keeps its own cursor.
        assert_eq!(store.export_cursor("file").await.unwrap(), 0);
    }

    pub async fn a_session_is_found_by_its_key_with_its_account_as_it_is_now_and_listed_oldest_first(
        store: &(impl Store + SessionStore),
    ) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        store
            .create_session(&new_session(2, bob, 2_000))
            .await
            .unwrap();
        let mut opened = new_session(1, alice, 1_000);
        opened.method = "saml".to_owned();
        store.create_session(&opened).await.unwrap();

        let found = store.find_session(&key(1)).await.unwrap().unwrap();
        assert_eq!(found.key, key(1));
        assert_eq!(found.method, "saml");
        assert_eq!(found.credential_mark, [1u8; 16]);
        assert!(!found.admin);
        assert_eq!(found.created_at, Timestamp::from_micros(1_000));
        assert_eq!(found.last_seen_at, Timestamp::from_micros(1_000));
        assert_eq!(found.client_ip, "192.0.2.1");
        assert_eq!(found.user.id, alice);
        assert_eq!(found.user.username.as_str(), "alice");
        assert_eq!(found.user.password_hash, "$argon2id$stub");
        assert!(!found.user.admin);
        assert!(store.find_session(&key(3)).await.unwrap().is_none());

        // The account is read with the session: a new password or role shows at once (what
        // ends the session, or renews it).
        store
            .set_password_hash(alice, "$argon2id$new")
            .await
            .unwrap();
        store.set_admin(alice, true).await.unwrap();
        let found = store.find_session(&key(1)).await.unwrap().unwrap();
        assert_eq!(found.user.password_hash, "$argon2id$new");
        assert!(found.user.admin);
        assert!(!found.admin, "the role when the session opened is kept");
        assert!(!found.granted_admin);
        let bobs = store.find_session(&key(2)).await.unwrap().unwrap();
        assert!(bobs.granted_admin, "the role a sign-on granted is kept");

        let listed: Vec<_> = store
            .list_sessions()
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.key, s.user.username.as_str().to_owned()))
            .collect();
        assert_eq!(
            listed,
            [(key(1), "alice".to_owned()), (key(2), "bob".to_owned())]
        );
    }

    pub async fn a_session_key_is_unique_and_a_session_needs_an_account(
        store: &(impl Store + SessionStore),
    ) {
        let alice = user(store, "alice").await;
        store
            .create_session(&new_session(1, alice, 1_000))
            .await
            .unwrap();
        let again = store.create_session(&new_session(1, alice, 2_000)).await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
        let nobody = UserId::from_i64(alice.get() + 1000).unwrap();
        let orphan = store.create_session(&new_session(2, nobody, 1_000)).await;
        assert!(orphan.is_err(), "a session of no account was stored");
        assert_eq!(store.list_sessions().await.unwrap().len(), 1);
    }

    pub async fn a_sessions_last_use_only_moves_forward(store: &(impl Store + SessionStore)) {
        let alice = user(store, "alice").await;
        store
            .create_session(&new_session(1, alice, 1_000))
            .await
            .unwrap();
        let last_seen = || async {
            store
                .find_session(&key(1))
                .await
                .unwrap()
                .unwrap()
                .last_seen_at
                .micros()
        };
        store
            .touch_session(&key(1), Timestamp::from_micros(5_000))
            .await
            .unwrap();
        assert_eq!(last_seen().await, 5_000);
        // A late write of an older use (another node, a slow request) does not move it back.
        store
            .touch_session(&key(1), Timestamp::from_micros(3_000))
            .await
            .unwrap();
        assert_eq!(last_seen().await, 5_000);
        // Nor does a use of a session that is gone bring it back.
        store
            .touch_session(&key(9), Timestamp::from_micros(6_000))
            .await
            .unwrap();
        assert!(store.find_session(&key(9)).await.unwrap().is_none());
        let found = store.find_session(&key(1)).await.unwrap().unwrap();
        assert_eq!(found.created_at, Timestamp::from_micros(1_000));
    }

    pub async fn ending_a_session_ends_only_it_and_ending_a_users_ends_all_of_theirs(
        store: &(impl Store + SessionStore),
    ) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let carol = user(store, "carol").await;
        for (n, who) in [(1, alice), (2, alice), (3, alice), (4, bob)] {
            store
                .create_session(&new_session(n, who, i64::from(n) * 1_000))
                .await
                .unwrap();
        }
        assert!(store.delete_session(&key(1)).await.unwrap());
        assert!(!store.delete_session(&key(1)).await.unwrap());
        assert!(store.find_session(&key(1)).await.unwrap().is_none());
        assert!(store.find_session(&key(2)).await.unwrap().is_some());

        assert_eq!(store.delete_sessions_of(alice).await.unwrap(), 2);
        assert_eq!(store.delete_sessions_of(alice).await.unwrap(), 0);
        assert_eq!(store.delete_sessions_of(carol).await.unwrap(), 0);
        let left: Vec<_> = store
            .list_sessions()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.key)
            .collect();
        assert_eq!(left, [key(4)]);
    }

    pub async fn a_pending_sign_on_is_taken_once_and_only_as_its_own_kind(
        store: &(impl Store + SessionStore),
    ) {
        let state = SecretString::from("request-id-1");
        store
            .put_pending_login(
                &key(1),
                "saml",
                &state,
                Timestamp::from_micros(0),
                Timestamp::from_micros(300),
            )
            .await
            .unwrap();
        // An OpenID Connect callback cannot take a SAML sign-on (and leaves it alone).
        assert!(
            store
                .take_pending_login(&key(1), "oidc")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .take_pending_login(&key(2), "saml")
                .await
                .unwrap()
                .is_none()
        );
        let (taken, expires) = store
            .take_pending_login(&key(1), "saml")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.expose_secret(), "request-id-1");
        assert_eq!(expires, Timestamp::from_micros(300));
        // Taken once: a replay finds nothing.
        assert!(
            store
                .take_pending_login(&key(1), "saml")
                .await
                .unwrap()
                .is_none()
        );
        // A cookie is never reused for a second sign-on while the first is pending.
        store
            .put_pending_login(
                &key(3),
                "oidc",
                &state,
                Timestamp::from_micros(0),
                Timestamp::from_micros(300),
            )
            .await
            .unwrap();
        let again = store
            .put_pending_login(
                &key(3),
                "oidc",
                &SecretString::from("other"),
                Timestamp::from_micros(1),
                Timestamp::from_micros(300),
            )
            .await;
        assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
        let (kept, _) = store
            .take_pending_login(&key(3), "oidc")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.expose_secret(), "request-id-1");
    }

    pub async fn expired_pending_sign_ons_go_when_the_next_one_is_kept(
        store: &(impl Store + SessionStore),
    ) {
        let state = SecretString::from("state");
        for (n, expires) in [(1, 100), (2, 1_000)] {
            store
                .put_pending_login(
                    &key(n),
                    "oidc",
                    &state,
                    Timestamp::from_micros(0),
                    Timestamp::from_micros(expires),
                )
                .await
                .unwrap();
        }
        store
            .put_pending_login(
                &key(3),
                "saml",
                &state,
                Timestamp::from_micros(200),
                Timestamp::from_micros(500),
            )
            .await
            .unwrap();
        assert!(
            store
                .take_pending_login(&key(1), "oidc")
                .await
                .unwrap()
                .is_none(),
            "the expired sign-on was purged"
        );
        for (n, kind) in [(2, "oidc"), (3, "saml")] {
            assert!(
                store
                    .take_pending_login(&key(n), kind)
                    .await
                    .unwrap()
                    .is_some(),
                "{n}"
            );
        }
    }
}

/// Runs each case as `sqlite::<case>` and `postgres::<case>`.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::sqlite_store(&dir).await;
                    super::cases::$case(&store).await;
                    store.close().await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = crate::support::pg::TestDb::create().await else {
                        return;
                    };
                    super::cases::$case(&db.store).await;
                    db.drop_all().await;
                }
            )+
        }
    };
}

contract!(
    usernames_are_unique_and_found_whatever_their_case,
    an_external_identity_links_to_one_account_and_a_new_one_has_no_password,
    a_new_password_hash_and_admin_flag_are_seen_by_the_next_lookup,
    the_creator_of_a_space_holds_every_permission_on_it,
    spaces_of_lists_only_member_spaces_newest_first,
    grants_accumulate_and_list_members_by_name,
    a_partial_revoke_keeps_the_rest_and_a_full_revoke_ends_the_membership,
    messages_come_newest_first_paged_by_since_after_and_limit,
    a_since_page_is_the_same_whether_few_or_most_messages_match,
    a_message_is_out_of_reach_through_another_spaces_id,
    an_audit_batch_reads_back_by_head_in_order_and_filtered_pages,
    an_audit_batch_repeating_a_stored_id_conflicts_and_stores_nothing,
    an_exclusive_append_links_after_the_newest_two_and_a_refusal_stores_nothing,
    an_alert_record_is_stored_and_read_back_as_an_alert,
    a_summary_record_keeps_its_count_and_a_count_on_another_record_is_refused,
    an_export_cursor_starts_at_zero_and_only_moves_forward,
    a_session_is_found_by_its_key_with_its_account_as_it_is_now_and_listed_oldest_first,
    a_session_key_is_unique_and_a_session_needs_an_account,
    a_sessions_last_use_only_moves_forward,
    ending_a_session_ends_only_it_and_ending_a_users_ends_all_of_theirs,
    a_pending_sign_on_is_taken_once_and_only_as_its_own_kind,
    expired_pending_sign_ons_go_when_the_next_one_is_kept,
);
