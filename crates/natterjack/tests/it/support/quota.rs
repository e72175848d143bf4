//! A client at three times its quota, and what it was admitted: how the shared rate-limit
//! tests measure that several nodes enforce one quota.

use reqwest::StatusCode;
use std::future::Future;
use std::time::{Duration, Instant};

/// The quota the measured client is held to.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    /// Requests at once.
    pub burst: u32,
    /// Requests a second after the burst.
    pub rate: f64,
}

/// Sends `send(n)` (the n-th request; its answer's status) at three times `quota.rate` for
/// `seconds`, then asserts that the rate admitted after the burst was `quota.rate` within
/// ±5% and that most requests were refused. Every answer must be 200 or 429. Prints what
/// it measured under `what`.
pub async fn holds_at_three_times<F, Fut>(what: &str, quota: Quota, seconds: f64, mut send: F)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = StatusCode>,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / (3.0 * quota.rate)));
    let (mut admitted, mut refused, mut sent) = (0u32, 0u32, 0usize);
    let started = Instant::now();
    let mut last_admitted = started;
    while started.elapsed().as_secs_f64() < seconds {
        tick.tick().await;
        let status = send(sent).await;
        sent += 1;
        match status {
            StatusCode::OK => {
                admitted += 1;
                last_admitted = Instant::now();
            }
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    let elapsed = last_admitted.duration_since(started).as_secs_f64();
    let rate = f64::from(admitted - quota.burst) / elapsed;
    eprintln!(
        "{what}: sent {sent}, admitted {admitted}, refused {refused} in {elapsed:.2} s: {rate:.2}/s against {}/s",
        quota.rate
    );
    assert!(
        (rate - quota.rate).abs() <= 0.05 * quota.rate,
        "admitted {rate:.2}/s after the burst, configured {}/s",
        quota.rate
    );
    assert!(
        f64::from(refused) >= 1.5 * f64::from(admitted),
        "a client at three times its rate is mostly refused"
    );
}
