//! Role and database names, checked in Rust before any statement uses them.
//!
//! The check is the first wall; the second is that identifiers never reach SQL text from
//! the client at all: DDL is built by the server with `format('%I', $1)` (see [`super::ddl`]).

use super::errors::refuse;
use natterjack_core::ports::StoreError;
use std::fmt;

/// A PostgreSQL identifier Natterjack is willing to create or grant to: lower-case ASCII,
/// digits and `_`, not starting with a digit, at most 63 bytes (PostgreSQL's limit), so it
/// never needs quoting and never folds to another name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identifier(String);

impl Identifier {
    /// Parses `name` as the identifier for `what` ("owner role", "database", ...).
    pub(crate) fn parse(what: &str, name: &str) -> Result<Self, StoreError> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if first_ok && rest_ok && name.len() <= 63 {
            Ok(Self(name.to_owned()))
        } else {
            Err(refuse(format!(
                "the {what} name {name:?} is not a plain PostgreSQL identifier: use lower-case letters, digits and _ (at most 63, not starting with a digit)"
            )))
        }
    }

    /// Parses a role name: an identifier that is not in PostgreSQL's reserved `pg_` space.
    pub(crate) fn role(what: &str, name: &str) -> Result<Self, StoreError> {
        let id = Self::parse(what, name)?;
        if id.0.starts_with("pg_") {
            return Err(refuse(format!(
                "the {what} name {name:?} starts with pg_, which PostgreSQL reserves"
            )));
        }
        Ok(id)
    }

    /// The name, for binding as a parameter.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn plain_lower_case_names_are_accepted() {
        for name in ["natterjack", "nj_app", "_x", "a1", &"a".repeat(63)] {
            assert_eq!(Identifier::parse("role", name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn names_that_would_need_quoting_are_refused() {
        for name in [
            "",
            "1abc",
            "Natterjack",
            "nj-app",
            "nj app",
            "nj\"; DROP ROLE postgres; --",
            "ñj",
            &"a".repeat(64),
        ] {
            assert!(Identifier::parse("role", name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn reserved_role_names_are_refused() {
        assert!(Identifier::role("app role", "pg_monitor").is_err());
        assert!(Identifier::parse("database", "pg_data").is_ok());
    }
}
