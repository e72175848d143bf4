//! `[access]`: the grant policy, the one access-control choice an operator makes.

use natterjack_core::policy::GrantPolicy;
use serde::Deserialize;

/// `[access]`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// `full-only` (default) or `subset`: see the escalation rule.
    pub grant_policy: GrantPolicy,
}
