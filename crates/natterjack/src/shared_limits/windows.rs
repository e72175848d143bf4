//! The anomaly monitor's windows in the same Redis as the budgets
//! ([`natterjack_core::audit::shared_windows`]): one `EVALSHA` of `windows.lua` per batch of
//! refusals, which counts each in its window on Redis's clock and lets exactly one node
//! raise each alert, once per window. Keys start with the budgets' prefix and `aw:`.

use async_trait::async_trait;
use natterjack_core::audit::alerts::Sighting;
use natterjack_core::audit::shared_windows::{Crossing, SharedWindows};
use natterjack_core::domain::Timestamp;
use redis::aio::ConnectionManager;
use std::time::Duration;

/// The counting script; see the comment at its top.
const SCRIPT: &str = include_str!("windows.lua");

/// The windows of every node, in one Redis.
pub struct RedisWindows {
    pub(super) connection: ConnectionManager,
    pub(super) script: redis::Script,
    pub(super) prefix: String,
}

impl RedisWindows {
    pub(super) fn new(connection: ConnectionManager, prefix: &str) -> Self {
        Self {
            connection,
            script: redis::Script::new(SCRIPT),
            prefix: format!("{prefix}aw:"),
        }
    }
}

/// A crossing as the script reports it: count, first time, newest members.
fn crossing(answer: Vec<String>) -> Result<Option<Crossing>, String> {
    let mut fields = answer.into_iter();
    let (Some(count), Some(first)) = (fields.next(), fields.next()) else {
        return Ok(None);
    };
    let count = count.parse().map_err(|_| "a count that is not a number")?;
    let first: f64 = first.parse().map_err(|_| "a time that is not a number")?;
    Ok(Some(Crossing {
        count,
        first: Timestamp::from_micros(first as i64),
        latest: fields.collect(),
    }))
}

#[async_trait]
impl SharedWindows for RedisWindows {
    async fn count(
        &self,
        sightings: &[Sighting],
        window: Duration,
    ) -> Result<Vec<Option<Crossing>>, String> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(u64::try_from(window.as_micros()).unwrap_or(u64::MAX));
        for sighting in sightings {
            let key = format!("{}{}:{}", self.prefix, sighting.kind, sighting.target);
            invocation
                .key(&key)
                .key(format!("{key}:alerted"))
                .arg(&sighting.member)
                .arg(sighting.threshold);
        }
        let mut connection = self.connection.clone();
        let answers: Vec<Vec<String>> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        answers.into_iter().map(crossing).collect()
    }
}
