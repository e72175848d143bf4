-- Natterjack schema, version 11 (SQLite): browser sessions of the console, and the sign-ons
-- (SAML, OpenID Connect) waiting for the browser to come back from its identity provider.
--
-- A session row is keyed by the SHA-256 of the token in the browser's cookie; the token
-- itself is stored nowhere. `credential_mark` is a fingerprint of the account's password
-- hash when the session opened (a password change ends older sessions); `is_admin` the
-- role then (a change of role renews the session); `granted_admin` the admin role the
-- sign-on's identity provider granted beyond the account's own (kept for the session's
-- life). Times are microseconds since the epoch.

CREATE TABLE console_sessions (
    id_hash         BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    method          TEXT    NOT NULL,
    credential_mark BLOB    NOT NULL,
    is_admin        INTEGER NOT NULL CHECK (is_admin IN (0, 1)),
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    client_ip       TEXT    NOT NULL,
    granted_admin   INTEGER NOT NULL CHECK (granted_admin IN (0, 1))
) STRICT, WITHOUT ROWID;

CREATE INDEX console_sessions_by_user ON console_sessions (user_id);

CREATE TABLE console_pending_logins (
    id_hash    BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    kind       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
