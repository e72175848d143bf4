//! Rate limiting that every transport shares: the GCRA limiter ([`gcra`]), the port through
//! which several nodes keep their budgets in one store ([`shared`]), the key a client
//! address counts under, and how a refusal is named in the audit trail.
//!
//! The policies themselves are configured and applied by the pipeline (per address, per
//! principal, global); the login budgets live with authentication ([`crate::auth`]),
//! because they count guesses, which only the login flow can tell apart from successes.

pub mod gcra;
pub mod shared;

use crate::audit::LimitedBy;
use gcra::Refusal;
use std::net::{IpAddr, Ipv6Addr};

/// The address as a rate-limit key: IPv4 as is, IPv6 by its /64 (one subscriber usually
/// holds a whole /64, so per-address keys would be free to multiply).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// The key of an account in every budget: the claimed name, lowercased and cut to 64
/// characters, so that case variants and overlong names share one budget.
pub fn account_key(username: &str) -> String {
    username
        .chars()
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The policy that refused a request and the key it counted the request under, as the
/// audit trail names them when it coalesces refusals: the client address (IPv6 by /64) for
/// the per-address policies, the account for `per-principal` and `account-guesses`, the
/// account at the address for `failed-logins`, `*` for `global`.
pub fn limited_by(refusal: &Refusal, ip: IpAddr, account: Option<&str>) -> LimitedBy {
    let account = account.map(account_key).unwrap_or_default();
    let key = match refusal.policy {
        "global" => "*".to_owned(),
        "per-principal" | "account-guesses" => account,
        "failed-logins" => format!("{account}@{}", limit_key(ip)),
        _ => limit_key(ip).to_string(),
    };
    LimitedBy {
        policy: refusal.policy,
        key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn an_ipv6_client_counts_under_its_slash_64_and_a_mapped_ipv4_as_ipv4() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
