-- Natterjack schema, version 6: encryption at rest, first half. Data keys (wrapped by the
-- key-encryption key, which never enters the database), and sealed columns beside the
-- plaintext ones. Version 7 seals every existing row in the same transaction as it drops
-- the plaintext columns, so no database is ever left half sealed.

CREATE TABLE data_keys (
    id           INTEGER PRIMARY KEY CHECK (id > 0),
    wrapped      BLOB,
    kek_id       TEXT    NOT NULL,
    current      INTEGER NOT NULL DEFAULT 0 CHECK (current IN (0, 1)),
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK (current = 0 OR wrapped IS NOT NULL)
) STRICT;

CREATE UNIQUE INDEX data_keys_one_current ON data_keys (current) WHERE current = 1;

-- Key id 0 marks a value not sealed yet.
ALTER TABLE messages ADD COLUMN body_sealed BLOB;
ALTER TABLE messages ADD COLUMN key_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN name_sealed BLOB;
ALTER TABLE spaces ADD COLUMN key_id INTEGER NOT NULL DEFAULT 0;

-- Replaced in version 7 by triggers that allow re-sealing and nothing else.
DROP TRIGGER spaces_are_never_updated;
DROP TRIGGER messages_are_never_edited;
