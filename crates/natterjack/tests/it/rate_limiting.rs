//! Rate limiting as the first control: floods are refused per client address before
//! credentials are parsed or passwords hashed, with 429 problems carrying `Retry-After` and
//! the IETF `RateLimit` fields.

use crate::support::in_process::InProcessServer;
use crate::support::{PASSWORD, problem};
use natterjack::config::{Config, RateLimitConfig};
use natterjack_api::pipeline::headers::SECURITY_HEADERS;
use natterjack_core::clock::ManualClock;
use natterjack_core::rate::gcra::Quota;
use reqwest::{Client, Response, StatusCode};
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;

const GENEROUS: Quota = Quota {
    burst: 10_000,
    per_second: 10_000.0,
};

fn localhost(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Rate limits on with generous quotas, changed by `tweak`.
fn limits(tweak: impl FnOnce(&mut RateLimitConfig)) -> impl FnOnce(&mut Config) {
    move |cfg: &mut Config| {
        let mut rl = RateLimitConfig {
            enabled: true,
            per_ip: GENEROUS,
            credentials: GENEROUS,
            registration: GENEROUS,
            global: GENEROUS,
            per_principal: GENEROUS,
            failed_logins: GENEROUS,
            account_guesses: GENEROUS,
            ..RateLimitConfig::default()
        };
        tweak(&mut rl);
        cfg.rate_limit = rl;
    }
}

async fn start(tweak: impl FnOnce(&mut RateLimitConfig)) -> InProcessServer {
    InProcessServer::start(limits(tweak), |r| r).await
}

/// A server whose `failed_logins` quota is `burst` guesses, then one a minute, and one user
/// registered on it.
async fn with_failed_login_burst(burst: u32, user: &str) -> InProcessServer {
    let server = start(|rl| {
        rl.failed_logins = Quota {
            burst,
            per_second: 1.0 / 60.0,
        }
    })
    .await;
    register(&server, user).await;
    server
}

async fn register(server: &InProcessServer, name: &str) {
    let r = server
        .client()
        .post(server.url("/users"))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// Checks a 429: problem body, `Retry-After`, the `RateLimit` fields of `policy`, headers.
async fn assert_refused_by(r: Response, policy: &str) -> u64 {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            r.headers().get(*name).and_then(|v| v.to_str().ok()),
            Some(*value)
        );
    }
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let policy_field = r.headers()["ratelimit-policy"].to_str().unwrap().to_owned();
    assert!(
        policy_field.starts_with(&format!("\"{policy}\";q=")),
        "{policy_field}"
    );
    assert_eq!(
        r.headers()["ratelimit"].to_str().unwrap(),
        format!("\"{policy}\";r=0;t={retry}")
    );
    let body = problem(r).await;
    assert_eq!(body["status"], 429);
    retry
}

async fn get(client: &Client, url: &str) -> Response {
    client.get(url).send().await.unwrap()
}

/// `GET /spaces` as `user` once per password, all sent at once; the statuses, in order.
async fn spaces_at_once(
    server: &InProcessServer,
    client: &Client,
    user: &str,
    passwords: impl IntoIterator<Item = String>,
) -> Vec<StatusCode> {
    let sent: Vec<_> = passwords
        .into_iter()
        .map(|password| {
            let request = client
                .get(server.url("/spaces"))
                .basic_auth(user, Some(password));
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in sent {
        statuses.push(request.await.unwrap());
    }
    statuses
}

/// `GET /spaces` from `client` with Basic credentials.
async fn spaces_as(
    server: &InProcessServer,
    client: &Client,
    user: &str,
    password: &str,
) -> Response {
    client
        .get(server.url("/spaces"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_flood_from_one_address_gets_429_while_another_address_is_still_served() {
    let server = start(|rl| {
        rl.per_ip = Quota {
            burst: 5,
            per_second: 0.1,
        }
    })
    .await;
    let flooder = server.client_from(localhost(1));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&flooder, &server.url("/health")).await.status());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_refused_by(get(&flooder, &server.url("/health")).await, "per-ip").await;
    let bystander = server.client_from(localhost(2));
    assert_eq!(
        get(&bystander, &server.url("/health")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_refused_by_the_limiter_never_reach_the_password_hasher() {
    let server = start(|rl| {
        rl.credentials = Quota {
            burst: 3,
            per_second: 0.1,
        }
    })
    .await;
    register(&server, "alice").await;
    let before = server.hashes();
    let client = server.client_from(localhost(1));
    let mut unauthorized = 0;
    let mut limited = 0;
    for i in 0..30 {
        let r = spaces_as(&server, &client, "alice", &format!("wrong-password-{i}")).await;
        match r.status() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((unauthorized, limited), (3, 27));
    assert_eq!(
        server.hashes() - before,
        3,
        "only the admitted attempts were hashed"
    );
}

#[tokio::test]
async fn a_malformed_authorization_header_from_a_limited_client_gets_429_not_400() {
    let server = start(|rl| {
        rl.per_ip = Quota {
            burst: 2,
            per_second: 0.1,
        }
    })
    .await;
    let client = server.client_from(localhost(1));
    for _ in 0..2 {
        get(&client, &server.url("/health")).await;
    }
    let r = client
        .get(server.url("/spaces"))
        .header("authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_refused_by(r, "per-ip").await;
    // The same header from an address with budget left is a 400, as usual.
    let fresh = server.client_from(localhost(2));
    let r = fresh
        .get(server.url("/spaces"))
        .header("authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn waiting_the_advertised_retry_after_is_enough_to_be_served_again() {
    let clock = ManualClock::new();
    let server = InProcessServer::start_on(
        clock.clone(),
        limits(|rl| {
            rl.per_ip = Quota {
                burst: 2,
                per_second: 1.0,
            }
        }),
        |r| r,
    )
    .await;
    let client = server.client_from(localhost(1));
    for _ in 0..2 {
        assert_eq!(
            get(&client, &server.url("/health")).await.status(),
            StatusCode::OK
        );
    }
    let retry = assert_refused_by(get(&client, &server.url("/health")).await, "per-ip").await;
    assert_eq!(retry, 1);
    // A moment short of the advertised wait is not enough; the wait itself is.
    clock.advance(Duration::from_millis(retry * 1000 - 1));
    assert_eq!(
        get(&client, &server.url("/health")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        get(&client, &server.url("/health")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let server = start(|rl| {
        rl.per_ip = Quota {
            burst: 3,
            per_second: 0.1,
        }
    })
    .await;
    let client = server.client_from(localhost(1));
    let mut ok = 0;
    for i in 0..12 {
        let r = client
            .get(server.url("/health"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        ok += usize::from(r.status() == StatusCode::OK);
    }
    assert_eq!(ok, 3, "every spoofed request counted against the real peer");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let server = start(|rl| {
        rl.per_ip = Quota {
            burst: 2,
            per_second: 0.1,
        };
        rl.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let proxy = server.client_from(localhost(1));
    let via = |client: &Client, forwarded: &str| {
        client
            .get(server.url("/health"))
            .header("x-forwarded-for", forwarded.to_owned())
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            via(&proxy, "1.2.3.4, 203.0.113.7").await.unwrap().status(),
            StatusCode::OK
        );
    }
    // The right-most untrusted hop is the client: a spoofed left-most entry does not help.
    assert_refused_by(via(&proxy, "9.9.9.9, 203.0.113.7").await.unwrap(), "per-ip").await;
    assert_eq!(
        via(&proxy, "203.0.113.8").await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_address_without_locking_the_owner_out() {
    let server = with_failed_login_burst(3, "alice").await;
    let attacker = server.client_from(localhost(1));
    for i in 0..3 {
        let r = spaces_as(&server, &attacker, "alice", &format!("guess-{i}-abcdef")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let before = server.hashes();
    assert_refused_by(
        spaces_as(&server, &attacker, "alice", "guess-4-abcdef").await,
        "failed-logins",
    )
    .await;
    assert_refused_by(
        spaces_as(&server, &attacker, "alice", "ALICE-case-does-not-help").await,
        "failed-logins",
    )
    .await;
    assert_eq!(server.hashes(), before, "throttled guesses are not hashed");
    // The owner, from their own address, logs in as usual.
    let owner = server.client_from(localhost(2));
    assert_eq!(
        spaces_as(&server, &owner, "alice", PASSWORD).await.status(),
        StatusCode::OK
    );
    // Other accounts are not affected by the attacker's failures on alice.
    register(&server, "bob").await;
    let r = spaces_as(&server, &attacker, "bob", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn guessing_spread_over_200_addresses_is_bounded_per_account_while_the_owner_is_served() {
    let server = start(|rl| {
        let defaults = RateLimitConfig::default();
        rl.failed_logins = defaults.failed_logins;
        rl.account_guesses = defaults.account_guesses;
    })
    .await;
    register(&server, "victim").await;
    // The owner logs in from her usual address before the attack.
    let owner = server.client_from(localhost(9));
    assert_eq!(
        spaces_as(&server, &owner, "victim", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    // 1,000 candidate passwords, the right one near the end; 200 addresses try 5 each, in
    // turn, as a distributed attack would, each within its own per-address budget.
    let words: Vec<String> = (0..1000)
        .map(|i| {
            if i == 990 {
                PASSWORD.to_owned()
            } else {
                format!("guess-{i:04}-lantern")
            }
        })
        .collect();
    let hashes_before = server.hashes();
    let mut statuses = std::collections::BTreeMap::new();
    for (n, five) in words.chunks(5).enumerate() {
        let attacker = server.client_from(IpAddr::from([127, 0, 1, n as u8 + 1]));
        for word in five {
            let r = spaces_as(&server, &attacker, "victim", word).await;
            *statuses.entry(r.status().as_u16()).or_insert(0) += 1;
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                assert_refused_by(r, "account-guesses").await;
            }
        }
        if n == 100 {
            // Mid-attack: the owner's usual address is served; a new one waits, which is
            // the price of bounding the attack (docs/CONFIGURATION.md, account_guesses).
            assert_eq!(
                spaces_as(&server, &owner, "victim", PASSWORD)
                    .await
                    .status(),
                StatusCode::OK,
                "the owner was locked out from her usual address"
            );
            let elsewhere = server.client_from(localhost(10));
            assert_refused_by(
                spaces_as(&server, &elsewhere, "victim", PASSWORD).await,
                "account-guesses",
            )
            .await;
        }
    }
    assert_eq!(
        statuses.get(&200),
        None,
        "the password was found: {statuses:?}"
    );
    let defaults = RateLimitConfig::default();
    let budget = defaults.account_guesses.burst as usize;
    // One more guess may have refilled while the attack ran (20 an hour).
    let wrong = statuses.get(&401).copied().unwrap_or(0);
    assert!((budget..=budget + 1).contains(&wrong), "{statuses:?}");
    assert_eq!(statuses.get(&429).copied().unwrap_or(0), 1000 - wrong);
    assert_eq!(
        server.hashes() - hashes_before,
        wrong as u64,
        "a refused guess was hashed"
    );
    // The monitor raised one alert for the account under attack.
    server.state.audit.flush().await.unwrap();
    let records = server
        .state
        .audit
        .store()
        .audit_in_order(0, 100_000)
        .await
        .unwrap();
    let alerts: Vec<_> = records
        .iter()
        .filter(|r| r.record.operation == "alert distributed_guessing")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].record.target, "principal=victim");
}

#[tokio::test]
async fn concurrent_wrong_guesses_each_need_a_token_before_any_is_hashed() {
    let server = with_failed_login_burst(3, "alice").await;
    let attacker = server.client_from(localhost(1));
    let before = server.hashes();
    // Twenty guesses at once: all are in flight before the first verification fails.
    let statuses = spaces_at_once(
        &server,
        &attacker,
        "alice",
        (0..20).map(|i| format!("guess-{i}-abcdef")),
    )
    .await;
    let verified = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (verified, limited),
        (3, 17),
        "only the burst may be verified: {statuses:?}"
    );
    assert_eq!(
        server.hashes() - before,
        3,
        "refused guesses are not hashed"
    );
    // A right password is not a wrong guess: the owner's logins from the same address give
    // their tokens back (the first needs a hash, the next come from the verification cache).
    let server = with_failed_login_burst(1, "bob").await;
    let owner = server.client_from(localhost(2));
    for _ in 0..3 {
        let r = spaces_as(&server, &owner, "bob", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = spaces_as(&server, &owner, "bob", "one-wrong-guess").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the budget of one wrong guess is still whole after right ones"
    );
}

#[tokio::test]
async fn concurrent_first_logins_with_the_right_password_share_one_hash_and_none_is_refused() {
    let server = with_failed_login_burst(2, "alice").await;
    let owner = server.client_from(localhost(3));
    let before = server.hashes();
    // Eight at once on a cold verification cache, four times the failed-logins burst: one
    // verifies, the others wait for it and find the cache filled.
    let statuses = spaces_at_once(
        &server,
        &owner,
        "alice",
        (0..8).map(|_| PASSWORD.to_owned()),
    )
    .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        server.hashes() - before,
        1,
        "one Argon2id run for all eight"
    );
    // Waiting is only for the very same credentials: wrong guesses still each take a token.
    let r = spaces_as(&server, &owner, "alice", "wrong-guess-one").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn registration_has_a_stricter_budget_than_other_requests() {
    let server = start(|rl| {
        rl.registration = Quota {
            burst: 2,
            per_second: 0.01,
        }
    })
    .await;
    for name in ["alice", "bob"] {
        register(&server, name).await;
    }
    let r = server
        .client()
        .post(server.url("/users"))
        .json(&json!({"username": "carol", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_refused_by(r, "registration").await;
    assert_eq!(
        get(&server.client(), &server.url("/health")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_authenticated_user_has_a_budget_of_their_own_across_addresses() {
    let server = start(|rl| {
        rl.per_principal = Quota {
            burst: 4,
            per_second: 0.01,
        }
    })
    .await;
    register(&server, "alice").await;
    register(&server, "bob").await;
    let mut statuses = Vec::new();
    for last in 1..=6 {
        let client = server.client_from(localhost(last));
        let r = spaces_as(&server, &client, "alice", PASSWORD).await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429]);
    let r = spaces_as(&server, &server.client(), "alice", PASSWORD).await;
    assert_refused_by(r, "per-principal").await;
    let r = spaces_as(&server, &server.client(), "bob", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_global_budget_caps_all_clients_together() {
    let server = start(|rl| {
        rl.global = Quota {
            burst: 4,
            per_second: 0.01,
        }
    })
    .await;
    let mut statuses = Vec::new();
    for last in 1..=6 {
        statuses.push(
            get(&server.client_from(localhost(last)), &server.url("/health"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429]);
    assert_refused_by(
        get(&server.client_from(localhost(9)), &server.url("/health")).await,
        "global",
    )
    .await;
}
