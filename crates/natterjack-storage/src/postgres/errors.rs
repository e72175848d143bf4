//! One classification of sqlx errors for every PostgreSQL query, so that the service layer
//! sees the same three outcomes whichever backend it runs on.

use natterjack_core::ports::StoreError;

/// SQLSTATEs that mean "the server is not there right now", not "the statement is wrong":
/// the connection-exception class (08), administrator/crash shutdown and "cannot connect
/// now" (57P01..57P03), and "too many connections" (53300).
fn is_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// Classifies a sqlx error once, for every query: uniqueness → `Conflict`; unreachable,
/// shutting down or out of connections → `Unavailable`; everything else (including
/// 42501 insufficient_privilege, a refused statement) → `Internal`.
///
/// The detail string carries the server's message and SQLSTATE, never a URL or a password:
/// sqlx's connection errors name the host and the role at most.
pub(crate) fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let detail = format!("{} (SQLSTATE {code})", db.message());
            if is_unavailable(&code) {
                StoreError::Unavailable(detail)
            } else {
                StoreError::Internal(detail)
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Configuration(_) => {
            StoreError::Internal("invalid PostgreSQL connection settings".to_owned())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

pub(crate) use crate::rows::corrupt;

/// An operator mistake found before any statement ran (a bad name, a missing file): always
/// `Internal`, with a message that says what to fix.
pub(crate) fn refuse(message: impl Into<String>) -> StoreError {
    StoreError::Internal(message.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn connection_exceptions_and_shutdowns_count_as_unavailable() {
        for code in [
            "08000", "08006", "08001", "57P01", "57P02", "57P03", "53300",
        ] {
            assert!(is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn refused_statements_and_constraint_failures_are_not_unavailable() {
        for code in ["42501", "23503", "23514", "P0001", "42P01", "53100"] {
            assert!(!is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn an_unreachable_pool_is_unavailable() {
        assert!(matches!(
            classify(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
    }
}
