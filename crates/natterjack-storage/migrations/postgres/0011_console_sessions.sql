-- Natterjack schema, version 11 (PostgreSQL): browser sessions of the console, and the
-- sign-ons (SAML, OpenID Connect) waiting for the browser to come back from its identity
-- provider. Mirrors migrations/sqlite/0011_console_sessions.sql: sessions are shared by
-- every node of the database, so a revocation holds on the next request wherever it lands.
--
-- A session row is keyed by the SHA-256 of the token in the browser's cookie; the token
-- itself is stored nowhere. `credential_mark` is a fingerprint of the account's password
-- hash when the session opened (a password change ends older sessions); `is_admin` the
-- role then (a change of role renews the session); `granted_admin` the admin role the
-- sign-on's identity provider granted beyond the account's own (kept for the session's
-- life). Times are microseconds since the epoch.

CREATE TABLE console_sessions (
    id_hash         BYTEA   PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id         BIGINT  NOT NULL REFERENCES users (id),
    method          TEXT    NOT NULL,
    credential_mark BYTEA   NOT NULL,
    is_admin        BOOLEAN NOT NULL,
    created_at      BIGINT  NOT NULL,
    last_seen_at    BIGINT  NOT NULL,
    client_ip       TEXT    NOT NULL,
    granted_admin   BOOLEAN NOT NULL
);

CREATE INDEX console_sessions_by_user ON console_sessions (user_id);

CREATE TABLE console_pending_logins (
    id_hash    BYTEA   PRIMARY KEY CHECK (length(id_hash) = 32),
    kind       TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);
