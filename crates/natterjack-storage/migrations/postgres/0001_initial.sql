-- Natterjack schema, version 1 (PostgreSQL). Applied by the owner role; the app role the
-- server connects as owns nothing and holds only the grants `natterjack migrate` applies
-- after every migration (see src/postgres/grants.rs).
--
-- Mirrors migrations/sqlite/0001_initial.sql: ids from identity columns, times as BIGINT
-- microseconds since the Unix epoch, usernames unique case-insensitively.

CREATE TABLE users (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL
);

-- SQLite's `UNIQUE COLLATE NOCASE`: one account per name whatever its case. Lookups use
-- `lower(username) = lower($1)` so that they can use this index.
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE spaces (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT   NOT NULL,
    owner_id   BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    space_id    BIGINT NOT NULL REFERENCES spaces (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    permissions BIGINT NOT NULL CHECK (permissions BETWEEN 1 AND 7),
    granted_by  BIGINT NOT NULL REFERENCES users (id),
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (space_id, user_id)
);

CREATE INDEX memberships_by_user ON memberships (user_id, space_id);

CREATE TABLE messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    space_id   BIGINT NOT NULL REFERENCES spaces (id),
    author_id  BIGINT NOT NULL REFERENCES users (id),
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX messages_by_space ON messages (space_id, id DESC);

-- Defence in depth beside the grants: rows the API never changes refuse changes even from
-- the owner role, unless a later migration drops these triggers.
CREATE FUNCTION natterjack_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END;
$$;

CREATE TRIGGER spaces_are_never_updated BEFORE UPDATE ON spaces
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('spaces are immutable');
CREATE TRIGGER spaces_are_never_deleted BEFORE DELETE ON spaces
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('spaces are never deleted');
CREATE TRIGGER messages_are_never_edited BEFORE UPDATE ON messages
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('messages are immutable');
CREATE TRIGGER users_are_never_deleted BEFORE DELETE ON users
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('users are never deleted');
