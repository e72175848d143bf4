-- Natterjack schema, version 6 (PostgreSQL): encryption at rest, first half.
-- Mirrors migrations/sqlite/0006_data_keys.sql.

CREATE TABLE data_keys (
    id           BIGINT  PRIMARY KEY CHECK (id > 0),
    wrapped      BYTEA,
    kek_id       TEXT    NOT NULL,
    current      BOOLEAN NOT NULL DEFAULT false,
    created_at   BIGINT  NOT NULL,
    destroyed_at BIGINT,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK (NOT current OR wrapped IS NOT NULL)
);

CREATE UNIQUE INDEX data_keys_one_current ON data_keys (current) WHERE current;

-- Key id 0 marks a value not sealed yet.
ALTER TABLE messages ADD COLUMN body_sealed BYTEA, ADD COLUMN key_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN name_sealed BYTEA, ADD COLUMN key_id BIGINT NOT NULL DEFAULT 0;

-- Replaced in version 7 by triggers that allow re-sealing and nothing else.
DROP TRIGGER spaces_are_never_updated ON spaces;
DROP TRIGGER messages_are_never_edited ON messages;
