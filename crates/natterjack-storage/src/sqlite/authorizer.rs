//! The SQLite authorizer: least privilege for the server's own database connections.
//!
//! SQLite has no roles, so the limits a PostgreSQL app role would have are enforced by a
//! callback that SQLite consults while compiling every statement. A statement that needs a
//! denied action fails to prepare with "not authorized", whatever its text.
//!
//! This module is the only `unsafe` code in Natterjack: one FFI registration and one
//! callback that reads C strings provided by SQLite.
#![allow(unsafe_code)]

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;
use std::ffi::{CStr, c_char, c_int, c_void};

/// Columns the API updates, per table. Every other UPDATE is refused.
const UPDATABLE: &[(&str, &[&str])] = &[
    ("users", &["password_hash", "is_admin"]),
    // Re-sealing only: triggers refuse any update that does not change the key.
    ("spaces", &["name", "key_id"]),
    ("messages", &["body", "key_id"]),
    // Reserving a block of row ids; a trigger lets `next` only move forward.
    ("row_ids", &["next"]),
    ("memberships", &["permissions", "granted_by", "granted_at"]),
    ("audit_export_cursor", &["delivered_id"]),
];
/// Tables the API deletes from (moderation and revocation). Every other DELETE is refused.
const DELETABLE: &[&str] = &["messages", "memberships"];
/// Tables the API inserts into.
const INSERTABLE: &[&str] = &[
    "users",
    "spaces",
    "memberships",
    "messages",
    "audit_log",
    "audit_export_cursor",
    "external_identities",
];

/// The decision for one action, as a pure function so it can be tested without FFI.
pub(crate) fn decide(action: c_int, arg1: Option<&str>, arg2: Option<&str>) -> bool {
    match action {
        ffi::SQLITE_SELECT | ffi::SQLITE_READ | ffi::SQLITE_FUNCTION | ffi::SQLITE_RECURSIVE => {
            true
        }
        ffi::SQLITE_TRANSACTION | ffi::SQLITE_SAVEPOINT => true,
        ffi::SQLITE_INSERT => arg1.is_some_and(|t| INSERTABLE.contains(&t)),
        ffi::SQLITE_UPDATE => match (arg1, arg2) {
            (Some(table), Some(column)) => UPDATABLE
                .iter()
                .any(|(t, cols)| *t == table && cols.contains(&column)),
            _ => false,
        },
        ffi::SQLITE_DELETE => arg1.is_some_and(|t| DELETABLE.contains(&t)),
        // A PRAGMA with an argument changes something; reads (no argument) are harmless.
        ffi::SQLITE_PRAGMA => arg2.is_none(),
        // DDL of every kind, ATTACH/DETACH, ANALYZE, REINDEX, virtual tables, and any
        // action code this list does not know: refused.
        _ => false,
    }
}

/// The callback SQLite calls while preparing each statement.
///
/// # Safety
/// SQLite passes either null or valid NUL-terminated strings that live for the duration of
/// the call; they are only read here, never stored.
unsafe extern "C" fn callback(
    _user_data: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    _database: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    // SAFETY: per the SQLite documentation of sqlite3_set_authorizer, each argument is null
    // or points to a NUL-terminated string valid until this callback returns.
    let read = |p: *const c_char| {
        (!p.is_null())
            .then(|| unsafe { CStr::from_ptr(p) }.to_str().ok())
            .flatten()
    };
    if decide(action, read(arg1), read(arg2)) {
        ffi::SQLITE_OK
    } else {
        ffi::SQLITE_DENY
    }
}

/// Installs the authorizer on a freshly opened server connection.
pub(crate) async fn install(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is the live connection handle, exclusively locked by `handle` for the
    // duration of this call; the callback is a plain function with no user data, so there is
    // no pointer whose lifetime could end before the connection's.
    let rc = unsafe { ffi::sqlite3_set_authorizer(db, Some(callback), std::ptr::null_mut()) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "could not install the SQLite authorizer (code {rc})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_attach_and_pragma_writes_are_denied() {
        for action in [
            ffi::SQLITE_CREATE_TABLE,
            ffi::SQLITE_DROP_TABLE,
            ffi::SQLITE_ALTER_TABLE,
            ffi::SQLITE_CREATE_TRIGGER,
            ffi::SQLITE_DROP_TRIGGER,
            ffi::SQLITE_CREATE_INDEX,
            ffi::SQLITE_ATTACH,
            ffi::SQLITE_DETACH,
            ffi::SQLITE_CREATE_VTABLE,
        ] {
            assert!(!decide(action, Some("users"), None), "action {action}");
        }
        assert!(!decide(
            ffi::SQLITE_PRAGMA,
            Some("journal_mode"),
            Some("delete")
        ));
        assert!(decide(ffi::SQLITE_PRAGMA, Some("journal_mode"), None));
    }

    #[test]
    fn only_the_updates_and_deletes_the_api_needs_are_allowed() {
        assert!(decide(
            ffi::SQLITE_UPDATE,
            Some("users"),
            Some("password_hash")
        ));
        assert!(!decide(ffi::SQLITE_UPDATE, Some("users"), Some("username")));
        assert!(!decide(
            ffi::SQLITE_UPDATE,
            Some("messages"),
            Some("space_id")
        ));
        assert!(!decide(
            ffi::SQLITE_UPDATE,
            Some("data_keys"),
            Some("wrapped")
        ));
        assert!(!decide(ffi::SQLITE_INSERT, Some("data_keys"), None));
        assert!(!decide(ffi::SQLITE_DELETE, Some("users"), None));
        assert!(!decide(ffi::SQLITE_DELETE, Some("spaces"), None));
        assert!(decide(ffi::SQLITE_DELETE, Some("messages"), None));
    }
}
