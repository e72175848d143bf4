//! One search on a service connection: attributes none (`1.1`), at most 2 entries, only the
//! DNs kept. A failure on a connection reused from the pool is retried once on a fresh one,
//! since a pooled connection may have died while idle (the directory restarted).

use super::pool::{Pooled, ServicePool};
use ldap3::{SearchEntry, SearchOptions};

pub(crate) use ldap3::Scope;

/// LDAP result code `sizeLimitExceeded`: more entries matched than the 2 asked for.
const SIZE_LIMIT_EXCEEDED: u32 = 4;
/// LDAP result code `noSuchObject`: the search base does not exist.
const NO_SUCH_OBJECT: u32 = 32;

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The DNs of the matching entries (2 when more matched).
    Entries(Vec<String>),
    /// The base entry does not exist.
    NoSuchBase,
}

/// Searches `base` with `filter`. The error is a detail for the server log: the directory
/// could not answer.
pub(crate) async fn run(
    pool: &ServicePool,
    base: &str,
    scope: Scope,
    filter: &str,
) -> Result<Found, String> {
    let connection = pool.take(false).await?;
    if !connection.reused {
        return once(connection, base, scope, filter).await;
    }
    match once(connection, base, scope, filter).await {
        Ok(found) => Ok(found),
        Err(error) => {
            tracing::debug!(%error, "a pooled LDAP connection failed; retrying on a fresh one");
            once(pool.take(true).await?, base, scope, filter).await
        }
    }
}

/// The search on one connection, given back to the pool only if the exchange completed.
async fn once(
    mut connection: Pooled<'_>,
    base: &str,
    scope: Scope,
    filter: &str,
) -> Result<Found, String> {
    let timeout = connection.operation_timeout();
    let result = connection
        .ldap
        .with_search_options(SearchOptions::new().sizelimit(2))
        .with_timeout(timeout)
        .search(base, scope, filter, vec!["1.1"])
        .await
        .map_err(|e| format!("LDAP search under {base:?}: {e}"))?;
    let (entries, outcome) = (result.0, result.1);
    connection.give_back();
    match outcome.rc {
        0 | SIZE_LIMIT_EXCEEDED => Ok(Found::Entries(
            entries
                .into_iter()
                .map(|entry| SearchEntry::construct(entry).dn)
                .collect(),
        )),
        NO_SUCH_OBJECT => Ok(Found::NoSuchBase),
        _ => Err(format!("LDAP search under {base:?}: {outcome}")),
    }
}
