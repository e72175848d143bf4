//! The LDAP adapter of the directory port (`natterjack_federation::ldap::LdapDirectory`)
//! against a real OpenLDAP directory (`support::slapd`): search-then-bind over StartTLS and
//! LDAPS, the admin group, one answer for an unknown user and a wrong password, literal
//! search filters whatever the name, TLS that cannot be skipped, and `Unavailable` (never
//! `Wrong`) while the directory is down, recovering without a new adapter.

use crate::support::slapd::Slapd;
use crate::support::slapd::dev_pki;
use natterjack_core::auth::{Directory, DirectoryError};
use natterjack_core::domain::Username;
use natterjack_federation::ldap::{LdapDirectory, LdapSettings, escape};
use secrecy::SecretString;
use std::net::TcpListener;
use std::time::Duration;

/// Longer than any bind may take here: a test waiting this long has hung.
const HUNG: Duration = Duration::from_secs(60);

/// The settings of a server using `ldap` at `url`: people searched with the service
/// account, trusting the directory's CA, bob's group making admins.
fn settings(ldap: &Slapd, url: String) -> LdapSettings {
    let mut settings = LdapSettings::new(
        url,
        ldap.people_base(),
        ldap.service_dn(),
        ldap.service_password_file(),
    );
    settings.ca_file = Some(ldap.ca_file().to_owned());
    settings.admin_group = Some(ldap.admin_group_dn().to_owned());
    settings
}

fn adapter(settings: &LdapSettings) -> LdapDirectory {
    LdapDirectory::new(settings).expect("valid LDAP settings")
}

fn secret(password: &str) -> SecretString {
    SecretString::from(password.to_owned())
}

/// `directory.bind(name, password)`, failing the test if it hangs.
async fn bind(
    directory: &LdapDirectory,
    name: &str,
    password: &str,
) -> Result<natterjack_core::auth::DirectoryUser, DirectoryError> {
    let username = Username::parse(name).unwrap();
    tokio::time::timeout(HUNG, directory.bind(&username, &secret(password)))
        .await
        .expect("the bind returned")
}

fn is_unavailable(answer: &Result<natterjack_core::auth::DirectoryUser, DirectoryError>) -> bool {
    matches!(answer, Err(DirectoryError::Unavailable(_)))
}

/// A loopback port nothing listens on (bound to port 0, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_right_password_over_starttls_is_accepted_and_the_group_makes_bob_admin() {
    let Some(ldap) = Slapd::shared() else { return };
    let directory = adapter(&settings(ldap, ldap.ldap_url()));

    let alice = bind(&directory, "alice", ldap.user_password("alice")).await;
    let alice = alice.expect("alice's directory password is accepted");
    assert_eq!(alice.dn, ldap.user_dn("alice"));
    assert!(!alice.admin, "alice is in no admin group");

    let bob = bind(&directory, "bob", ldap.user_password("bob")).await;
    let bob = bob.expect("bob's directory password is accepted");
    assert_eq!(bob.dn, ldap.user_dn("bob"));
    assert!(bob.admin, "bob is a member of {}", ldap.admin_group_dn());
}

#[tokio::test]
async fn the_right_password_over_ldaps_is_accepted_and_the_group_makes_bob_admin() {
    let Some(ldap) = Slapd::shared() else { return };
    let directory = adapter(&settings(ldap, ldap.ldaps_url()));

    let alice = bind(&directory, "alice", ldap.user_password("alice")).await;
    assert!(!alice.expect("alice over LDAPS").admin);
    let bob = bind(&directory, "bob", ldap.user_password("bob")).await;
    assert!(bob.expect("bob over LDAPS").admin);
}

#[tokio::test]
async fn without_an_admin_group_nobody_is_admin() {
    let Some(ldap) = Slapd::shared() else { return };
    let mut settings = settings(ldap, ldap.ldaps_url());
    settings.admin_group = None;
    let directory = adapter(&settings);

    let bob = bind(&directory, "bob", ldap.user_password("bob")).await;
    assert!(!bob.expect("bob's password is accepted").admin);
}

#[tokio::test]
async fn the_source_is_the_url_with_its_port_and_without_a_path() {
    let Some(ldap) = Slapd::shared() else { return };
    let directory = adapter(&settings(ldap, format!("{}/", ldap.ldaps_url())));
    assert_eq!(directory.source(), ldap.ldaps_url());
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let Some(ldap) = Slapd::shared() else { return };
    let directory = adapter(&settings(ldap, ldap.ldap_url()));

    let wrong = bind(&directory, "alice", ldap.user_password("bob")).await;
    assert_eq!(wrong, Err(DirectoryError::Wrong));
    let unknown = bind(&directory, "mallory", "mallory-directory-pw").await;
    assert_eq!(unknown, Err(DirectoryError::Wrong));
    // The unknown user's password is tried against nobody's entry, not against alice's.
    let unknown = bind(&directory, "nobody", ldap.user_password("alice")).await;
    assert_eq!(unknown, Err(DirectoryError::Wrong));
}

#[tokio::test]
async fn filter_injection_names_are_searched_as_literal_text_and_find_nobody() {
    let Some(ldap) = Slapd::shared() else { return };
    let directory = adapter(&settings(ldap, ldap.ldaps_url()));

    for hostile in ["*)(uid=*", "admin)(|(a=*", "*", "alice)(uid=*"] {
        // The core's allow list refuses these names before any directory sees them...
        assert!(Username::parse(hostile).is_err(), "{hostile}");
        // ...and the adapter, reached directly, escapes every filter metacharacter...
        let filter = directory.user_filter_for(hostile);
        assert_eq!(
            filter,
            format!(
                "(&(objectClass=inetOrgPerson)(uid={}))",
                escape::filter_value(hostile)
            )
        );
        assert!(!escape::filter_value(hostile).contains(['*', '(', ')']));
        // ...so the directory compares the whole name as one uid, which nobody has.
        let found = directory.find_user_dns(hostile).await.unwrap();
        assert_eq!(found, Vec::<String>::new(), "{hostile} matched entries");
        let answer = directory
            .bind_name(hostile, &secret(ldap.user_password("alice")))
            .await;
        assert_eq!(answer, Err(DirectoryError::Wrong), "{hostile}");
    }
    assert_eq!(
        directory.user_filter_for("*)(uid=*"),
        r"(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))"
    );
    assert_eq!(
        directory.user_filter_for("admin)(|(a=*"),
        r"(&(objectClass=inetOrgPerson)(uid=admin\29\28|\28a=\2a))"
    );
    // The same search finds a real name: the empty results above are not a broken search.
    let alice = directory.find_user_dns("alice").await.unwrap();
    assert_eq!(alice, vec![ldap.user_dn("alice")]);
}

#[tokio::test]
async fn a_filter_matching_several_entries_refuses_even_the_right_password() {
    let Some(ldap) = Slapd::shared() else { return };
    let mut settings = settings(ldap, ldap.ldaps_url());
    settings.user_filter = "(&(objectClass=inetOrgPerson)(|(uid={username})(uid=bob)))".into();
    let directory = adapter(&settings);

    let alice = bind(&directory, "alice", ldap.user_password("alice")).await;
    assert_eq!(alice, Err(DirectoryError::Wrong));
}

#[tokio::test]
async fn an_empty_password_or_one_with_nul_is_wrong_without_asking_the_directory() {
    let Some(ldap) = Slapd::shared() else { return };
    // A directory that is not there: anything that reached it would be Unavailable.
    let down = adapter(&settings(
        ldap,
        format!("ldap://127.0.0.1:{}", closed_port()),
    ));
    let right = bind(&down, "alice", ldap.user_password("alice")).await;
    assert!(is_unavailable(&right), "{right:?}");
    for password in ["", "alice-directory-pw\0", "\0"] {
        let answer = down.bind_name("alice", &secret(password)).await;
        assert_eq!(answer, Err(DirectoryError::Wrong), "{password:?}");
    }
    // Against the real directory too: an empty simple bind would be an anonymous bind.
    let up = adapter(&settings(ldap, ldap.ldap_url()));
    assert_eq!(
        up.bind_name("alice", &secret("")).await,
        Err(DirectoryError::Wrong)
    );
}

#[test]
fn plaintext_ldap_to_a_host_that_is_not_loopback_is_refused_at_construction() {
    let Some(ldap) = Slapd::shared() else { return };
    for url in ["ldap://ldap.example.org:389", "ldap://10.1.2.3"] {
        let mut settings = settings(ldap, url.to_owned());
        settings.allow_plaintext_loopback = true;
        let refused = LdapDirectory::new(&settings).unwrap_err();
        assert_eq!(refused.setting(), "allow_plaintext_loopback", "{refused}");
        assert!(
            refused
                .to_string()
                .contains("[auth.ldap] allow_plaintext_loopback")
        );
        // Without the setting, the same URL is accepted: it will use StartTLS.
        settings.allow_plaintext_loopback = false;
        assert!(LdapDirectory::new(&settings).is_ok(), "{url}");
    }
}

/// A change making valid settings invalid.
type Change = fn(&mut LdapSettings);

#[test]
fn unusable_settings_are_refused_naming_the_setting() {
    let Some(ldap) = Slapd::shared() else { return };
    let base = settings(ldap, ldap.ldaps_url());
    let cases: [(&str, Change); 9] = [
        ("url", |s| s.url = "https://dir.example.org".into()),
        ("url", |s| s.url = "ldaps://dir.example.org/dc=x".into()),
        ("user_filter", |s| s.user_filter = "(uid=alice)".into()),
        ("user_filter", |s| {
            s.user_filter = "(|(uid={username})(cn={username}))".into()
        }),
        ("search_base", |s| s.search_base = " ".into()),
        ("bind_password_file", |s| {
            s.bind_password_file = "/nonexistent/ldap-pw".into()
        }),
        ("ca_file", |s| {
            s.ca_file = Some("/nonexistent/ca.pem".into())
        }),
        ("pool_size", |s| s.pool_size = 0),
        ("connect_timeout_ms", |s| s.connect_timeout_ms = 0),
    ];
    for (expected, change) in cases {
        let mut settings = base.clone();
        change(&mut settings);
        let refused = LdapDirectory::new(&settings).unwrap_err();
        assert_eq!(refused.setting(), expected, "{refused}");
    }
}

#[tokio::test]
async fn ldap_to_loopback_negotiates_starttls_so_an_untrusted_ca_makes_it_unavailable() {
    let Some(ldap) = Slapd::shared() else { return };
    let other = tempfile::tempdir().unwrap();
    let other_ca = dev_pki(other.path()).ca;

    let mut untrusted = settings(ldap, ldap.ldap_url());
    untrusted.ca_file = Some(other_ca.clone());
    let directory = adapter(&untrusted);
    let answer = bind(&directory, "alice", ldap.user_password("alice")).await;
    assert!(is_unavailable(&answer), "{answer:?}");
    let wrong = bind(&directory, "alice", "not-her-password").await;
    assert!(is_unavailable(&wrong), "never Wrong: {wrong:?}");

    // The same URL and CA with plaintext explicitly allowed to loopback: no TLS, so the
    // CA does not matter. The failure above was the StartTLS handshake.
    untrusted.allow_plaintext_loopback = true;
    let plaintext = adapter(&untrusted);
    let alice = bind(&plaintext, "alice", ldap.user_password("alice")).await;
    assert!(alice.is_ok(), "{alice:?}");

    // LDAPS with the untrusted CA fails the same way.
    let mut ldaps = settings(ldap, ldap.ldaps_url());
    ldaps.ca_file = Some(other_ca);
    let answer = bind(&adapter(&ldaps), "alice", ldap.user_password("alice")).await;
    assert!(is_unavailable(&answer), "{answer:?}");
}

#[tokio::test]
async fn a_refused_service_account_makes_the_directory_unavailable_not_the_password_wrong() {
    let Some(ldap) = Slapd::shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrong_service_password = dir.path().join("service-password");
    std::fs::write(&wrong_service_password, "not-the-service-password\n").unwrap();
    let mut settings = settings(ldap, ldap.ldaps_url());
    settings.bind_password_file = wrong_service_password;
    let directory = adapter(&settings);

    let answer = bind(&directory, "alice", ldap.user_password("alice")).await;
    let Err(DirectoryError::Unavailable(detail)) = answer else {
        panic!("expected Unavailable, got {answer:?}");
    };
    assert!(detail.contains("service account"), "{detail}");
    assert!(!detail.contains("not-the-service-password"), "{detail}");
}

#[tokio::test]
async fn concurrent_logins_share_a_pool_of_one_connection() {
    let Some(ldap) = Slapd::shared() else { return };
    let mut settings = settings(ldap, ldap.ldaps_url());
    settings.pool_size = 1;
    let directory = adapter(&settings);

    let names = ["alice", "bob", "carol", "alice", "bob", "carol"];
    let logins = names.map(|name| bind(&directory, name, ldap.user_password(name)));
    for (answer, name) in futures_join(logins).await.into_iter().zip(names) {
        assert!(answer.is_ok(), "{name}: {answer:?}");
    }
}

/// Runs the futures concurrently on this task and collects their outputs in order.
async fn futures_join<F: std::future::Future>(futures: [F; 6]) -> Vec<F::Output> {
    let [a, b, c, d, e, f] = futures;
    let (a, b, c, d, e, f) = tokio::join!(a, b, c, d, e, f);
    vec![a, b, c, d, e, f]
}

#[tokio::test]
async fn a_stopped_directory_is_unavailable_never_wrong_and_a_restarted_one_answers_again() {
    let test = "a_stopped_directory_is_unavailable_never_wrong_and_a_restarted_one_answers_again";
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let Some(mut ldap) = Slapd::start(test, dir.path(), &tls).await else {
        return;
    };
    let directory = adapter(&settings(&ldap, ldap.ldap_url()));
    let right = ldap.user_password("alice");
    assert!(bind(&directory, "alice", right).await.is_ok());

    ldap.stop().await;
    for password in [right, "a-wrong-password"] {
        let answer = bind(&directory, "alice", password).await;
        assert!(is_unavailable(&answer), "directory down: {answer:?}");
    }
    let unknown = bind(&directory, "mallory", "whatever").await;
    assert!(is_unavailable(&unknown), "directory down: {unknown:?}");

    ldap.restart().await;
    let alice = bind(&directory, "alice", right).await;
    assert!(
        alice.is_ok(),
        "after the restart: {alice:?}\n{}",
        ldap.log()
    );
    let wrong = bind(&directory, "alice", "a-wrong-password").await;
    assert_eq!(wrong, Err(DirectoryError::Wrong));
}

#[tokio::test]
async fn a_directory_down_at_start_up_is_unavailable_until_it_comes_up() {
    let test = "a_directory_down_at_start_up_is_unavailable_until_it_comes_up";
    let dir = tempfile::tempdir().unwrap();
    let tls = dev_pki(&dir.path().join("pki"));
    let Some(mut ldap) = Slapd::start(test, dir.path(), &tls).await else {
        return;
    };
    ldap.stop().await;
    let directory = adapter(&settings(&ldap, ldap.ldaps_url()));
    let answer = bind(&directory, "bob", ldap.user_password("bob")).await;
    assert!(is_unavailable(&answer), "{answer:?}");

    ldap.restart().await;
    let bob = bind(&directory, "bob", ldap.user_password("bob")).await;
    assert!(bob.expect("bob once the directory is up").admin);
}

#[tokio::test]
async fn a_peer_that_never_answers_is_unavailable_after_the_connect_timeout() {
    let Some(ldap) = Slapd::shared() else { return };
    // The kernel completes the TCP handshake for the listener's backlog, but nobody ever
    // reads: the TLS handshake (LDAPS) or the StartTLS request (LDAP) gets no answer.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for url in [
        format!("ldaps://127.0.0.1:{port}"),
        format!("ldap://127.0.0.1:{port}"),
    ] {
        let mut settings = settings(ldap, url.clone());
        settings.connect_timeout_ms = 200;
        let directory = adapter(&settings);
        let answer = bind(&directory, "alice", ldap.user_password("alice")).await;
        assert!(is_unavailable(&answer), "{url}: {answer:?}");
    }
    // And a port nobody listens on.
    let mut settings = settings(ldap, format!("ldaps://127.0.0.1:{}", closed_port()));
    settings.connect_timeout_ms = 200;
    let answer = bind(&adapter(&settings), "alice", ldap.user_password("alice")).await;
    assert!(is_unavailable(&answer), "{answer:?}");
}
