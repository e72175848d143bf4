//! `database.ca_file` is the only trust for the database's certificate: against a
//! PostgreSQL of the test's own that accepts TLS connections only (`support/tls_postgres.rs`),
//! with certificates from CAs the tests make. CA B stands in for a public CA: a server
//! certificate it issued is refused while the file holds only CA A, and accepted once the
//! file holds B too, so nothing but the file decides.

use crate::support::tls_postgres::{TestCa, TlsPostgres};
use natterjack_core::audit::ExportLeases;
use natterjack_core::domain::Username;
use natterjack_core::ports::{Store, StoreError};
use natterjack_core::store_cache::{Invalidation, InvalidationSink, InvalidationSource};
use natterjack_storage::PgStore;
use natterjack_storage::postgres::connect_options;
use sqlx::ConnectOptions;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Says when the listener has subscribed.
#[derive(Default)]
struct Subscribed(AtomicBool);

impl InvalidationSink for Subscribed {
    fn connected(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn disconnected(&self) {}
    fn invalidate(&self, _: Invalidation) {}
}

/// The reason a connection was refused, as the operator reads it.
fn refusal(result: Result<Vec<natterjack_storage::sealing::DataKeyRow>, StoreError>) -> String {
    match result {
        Ok(_) => panic!("the connection was accepted"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn with_the_servers_ca_in_ca_file_every_connection_of_the_store_runs_over_verified_tls() {
    let ca = TestCa::new("Natterjack test CA A");
    let (cert, key) = ca.server("localhost");
    let Some(pg) = TlsPostgres::start(&cert, &key) else {
        return;
    };
    let ca_file = pg.ca_file("ca.pem", &[&ca.pem]);
    let target = |role: &str, db: &str| {
        connect_options(
            &pg.url("localhost", role, db, "verify-full"),
            Some(&ca_file),
        )
        .unwrap()
    };
    let admin = target("postgres", "postgres");
    let owner = target("nj_owner", "natterjack");
    let app = target("nj_app", "natterjack");
    assert!(admin.trusts_ca_file_alone() && owner.trusts_ca_file_alone());

    // db init as the administrator, migrate as the owner, open as the app role: the
    // server accepts nothing but TLS on TCP, so each of them negotiated it.
    PgStore::init(&admin, &owner, &app).await.unwrap();
    PgStore::migrate(&owner, app.get_username(), &crate::support::keyring())
        .await
        .unwrap();
    let store = PgStore::open(&app, 2, Duration::from_secs(5), crate::support::keyring())
        .await
        .unwrap();
    let alice = Username::parse("alice").unwrap();
    store.create_user(&alice, "$argon2id$a").await.unwrap();
    let found = store.find_user(&alice).await.unwrap().unwrap();
    assert_eq!(found.username.as_str(), "alice");

    // The export lease's connection and the read cache's LISTEN connection too.
    let mut lease = store.export_leases().lease("siem");
    assert!(lease.hold().await.unwrap(), "the lease connects and locks");
    let subscribed = Arc::new(Subscribed::default());
    let source = store.invalidations();
    let sink: Arc<dyn InvalidationSink> = subscribed.clone();
    let listener = tokio::spawn(async move { source.run(sink).await });
    tokio::time::timeout(Duration::from_secs(10), async {
        while !subscribed.0.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the listener never subscribed");

    // Seen from the server: the app role's sessions (pool, lease, listener) are all TLS.
    let mut conn = admin
        .options()
        .clone()
        .database("natterjack")
        .connect()
        .await
        .unwrap();
    let (tls, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1",
    )
    .bind("nj_app")
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(tls >= 3, "pool, lease and listener: {tls} TLS sessions");
    assert_eq!(plain, 0);

    listener.abort();
    lease.release().await;
    store.close().await;
}

#[tokio::test]
async fn a_certificate_from_a_ca_missing_from_ca_file_is_refused_as_an_unknown_issuer_until_the_file_holds_that_ca()
 {
    let ours = TestCa::new("Natterjack test CA A");
    let other = TestCa::new("Natterjack test CA B (a public CA)");
    let (cert, key) = other.server("localhost");
    let Some(pg) = TlsPostgres::start(&cert, &key) else {
        return;
    };
    let url = pg.url("localhost", "postgres", "postgres", "verify-full");

    let only_ours = pg.ca_file("ours.pem", &[&ours.pem]);
    let target = connect_options(&url, Some(&only_ours)).unwrap();
    let said = refusal(PgStore::stored_data_keys(&target).await);
    assert!(
        said.contains("invalid peer certificate: UnknownIssuer")
            && said.contains("database.ca_file"),
        "not refused for its issuer: {said}"
    );

    // The same server and certificate, with B in the file as well: accepted. B is a
    // perfectly good CA; only its absence from the file refused it.
    let both = pg.ca_file("both.pem", &[&ours.pem, &other.pem]);
    let target = connect_options(&url, Some(&both)).unwrap();
    PgStore::stored_data_keys(&target).await.unwrap();
}

#[tokio::test]
async fn under_verify_full_a_certificate_for_another_host_name_is_refused_and_verify_ca_checks_the_chain_alone()
 {
    let ca = TestCa::new("Natterjack test CA A");
    let (cert, key) = ca.server("db.elsewhere.example");
    let Some(pg) = TlsPostgres::start(&cert, &key) else {
        return;
    };
    let ca_file = pg.ca_file("ca.pem", &[&ca.pem]);

    let full = connect_options(
        &pg.url("localhost", "postgres", "postgres", "verify-full"),
        Some(&ca_file),
    )
    .unwrap();
    let said = refusal(PgStore::stored_data_keys(&full).await);
    assert!(
        said.contains("certificate not valid for name \"localhost\""),
        "not refused for its name: {said}"
    );

    let chain_only = connect_options(
        &pg.url("localhost", "postgres", "postgres", "verify-ca"),
        Some(&ca_file),
    )
    .unwrap();
    PgStore::stored_data_keys(&chain_only).await.unwrap();

    // verify-ca still checks the chain: a certificate of another CA is refused.
    let stranger = TestCa::new("Natterjack test CA C");
    let wrong_ca = pg.ca_file("stranger.pem", &[&stranger.pem]);
    let chain_only = connect_options(
        &pg.url("localhost", "postgres", "postgres", "verify-ca"),
        Some(&wrong_ca),
    )
    .unwrap();
    let said = refusal(PgStore::stored_data_keys(&chain_only).await);
    assert!(said.contains("UnknownIssuer"), "{said}");
}
