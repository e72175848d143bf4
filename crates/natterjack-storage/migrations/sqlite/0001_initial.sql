-- Natterjack schema, version 1. Applied by the owner connection (no authorizer); the
-- server's own connections can never run DDL.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT    NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE spaces (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    owner_id   INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE memberships (
    space_id    INTEGER NOT NULL REFERENCES spaces (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    permissions INTEGER NOT NULL CHECK (permissions BETWEEN 1 AND 7),
    granted_by  INTEGER NOT NULL REFERENCES users (id),
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (space_id, user_id)
) STRICT;

CREATE INDEX memberships_by_user ON memberships (user_id, space_id);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    space_id   INTEGER NOT NULL REFERENCES spaces (id),
    author_id  INTEGER NOT NULL REFERENCES users (id),
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX messages_by_space ON messages (space_id, id DESC);

-- Defence in depth beside the authorizer: rows the API never changes refuse changes even
-- from a connection without the authorizer, unless the owner drops these triggers in a
-- migration.
CREATE TRIGGER spaces_are_never_updated BEFORE UPDATE ON spaces
BEGIN SELECT RAISE(ABORT, 'spaces are immutable'); END;
CREATE TRIGGER spaces_are_never_deleted BEFORE DELETE ON spaces
BEGIN SELECT RAISE(ABORT, 'spaces are never deleted'); END;
CREATE TRIGGER messages_are_never_edited BEFORE UPDATE ON messages
BEGIN SELECT RAISE(ABORT, 'messages are immutable'); END;
CREATE TRIGGER users_are_never_deleted BEFORE DELETE ON users
BEGIN SELECT RAISE(ABORT, 'users are never deleted'); END;
