//! The escalation rule: a grant (or revocation) can never give more than the granter holds.

use crate::domain::Permissions;
use serde::Deserialize;

/// Who may change other members' permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantPolicy {
    /// Only holders of all of `rwd` may grant or revoke (any permissions). The default: it
    /// keeps moderation power with the people who already have it all.
    #[default]
    FullOnly,
    /// Any member may grant or revoke a subset of the permissions they hold themselves.
    Subset,
}

/// Whether a member holding `granter` may grant or revoke `change`.
///
/// Returns the refusal reason, which is shown to the client and audited.
pub fn may_change(
    policy: GrantPolicy,
    granter: Permissions,
    change: Permissions,
) -> Result<(), &'static str> {
    if change.is_empty() {
        return Err("a grant or revocation must name at least one permission");
    }
    match policy {
        GrantPolicy::FullOnly if granter == Permissions::ALL => Ok(()),
        GrantPolicy::FullOnly => Err("only members holding rwd may change permissions"),
        GrantPolicy::Subset if granter.contains(change) => Ok(()),
        GrantPolicy::Subset => Err("cannot grant or revoke permissions you do not hold"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Permissions {
        if s.is_empty() {
            Permissions::NONE
        } else {
            Permissions::parse(s).unwrap_or_default()
        }
    }

    /// Every (granter, requested) pair under both policies. The expectation is written as a
    /// literal table of the pairs that are allowed, not recomputed from the rule.
    #[test]
    fn every_granter_and_request_pair_follows_the_policy_table() {
        let subset_allowed: &[(&str, &[&str])] = &[
            ("", &[]),
            ("r", &["r"]),
            ("w", &["w"]),
            ("d", &["d"]),
            ("rw", &["r", "w", "rw"]),
            ("rd", &["r", "d", "rd"]),
            ("wd", &["w", "d", "wd"]),
            ("rwd", &["r", "w", "d", "rw", "rd", "wd", "rwd"]),
        ];
        let requests = ["", "r", "w", "d", "rw", "rd", "wd", "rwd"];
        let mut checked = 0;
        for (granter, allowed) in subset_allowed {
            for req in requests {
                let expect_subset = allowed.contains(&req);
                let expect_full = *granter == "rwd" && !req.is_empty();
                assert_eq!(
                    may_change(GrantPolicy::Subset, p(granter), p(req)).is_ok(),
                    expect_subset,
                    "subset: {granter:?} granting {req:?}"
                );
                assert_eq!(
                    may_change(GrantPolicy::FullOnly, p(granter), p(req)).is_ok(),
                    expect_full,
                    "full-only: {granter:?} granting {req:?}"
                );
                checked += 2;
            }
        }
        assert_eq!(checked, 128);
    }
}
