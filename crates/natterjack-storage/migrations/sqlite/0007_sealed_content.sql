-- Natterjack schema, version 7: encryption at rest, second half. Runs after every row was
-- sealed (in the same transaction): the plaintext columns go, the sealed ones take their
-- names. The owner connection runs VACUUM afterwards when rows were sealed, so no page of
-- the file keeps the old text.

ALTER TABLE messages DROP COLUMN body;
ALTER TABLE messages RENAME COLUMN body_sealed TO body;
ALTER TABLE spaces DROP COLUMN name;
ALTER TABLE spaces RENAME COLUMN name_sealed TO name;

-- Content stays immutable: an update may only re-seal the value under another data key
-- that exists and is not destroyed (rotation).
CREATE TRIGGER spaces_are_only_resealed BEFORE UPDATE ON spaces
WHEN NEW.id IS NOT OLD.id OR NEW.owner_id IS NOT OLD.owner_id
  OR NEW.created_at IS NOT OLD.created_at OR NEW.key_id = OLD.key_id
  OR NOT EXISTS (SELECT 1 FROM data_keys WHERE id = NEW.key_id AND wrapped IS NOT NULL)
BEGIN SELECT RAISE(ABORT, 'spaces are immutable: an update only re-seals the name under another key'); END;

CREATE TRIGGER messages_are_only_resealed BEFORE UPDATE ON messages
WHEN NEW.id IS NOT OLD.id OR NEW.space_id IS NOT OLD.space_id OR NEW.author_id IS NOT OLD.author_id
  OR NEW.created_at IS NOT OLD.created_at OR NEW.key_id = OLD.key_id
  OR NOT EXISTS (SELECT 1 FROM data_keys WHERE id = NEW.key_id AND wrapped IS NOT NULL)
BEGIN SELECT RAISE(ABORT, 'messages are immutable: an update only re-seals the body under another key'); END;

-- A data key is never deleted: destroying one clears its wrapped bytes and keeps the row,
-- so its id is never reused.
CREATE TRIGGER data_keys_are_never_deleted BEFORE DELETE ON data_keys
BEGIN SELECT RAISE(ABORT, 'data keys are destroyed, never deleted'); END;

-- Row ids are reserved in blocks before the insert, because the seal's associated data
-- names the row: `next` is the first id not handed out yet, and it only moves forward, so
-- no id (a deleted row's included) is ever used twice.
CREATE TABLE row_ids (
    name TEXT    PRIMARY KEY,
    next INTEGER NOT NULL CHECK (next > 0)
) STRICT;
INSERT INTO row_ids (name, next) VALUES
    ('spaces', (SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'spaces'), 0), coalesce((SELECT max(id) FROM spaces), 0)) + 1)),
    ('messages', (SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0), coalesce((SELECT max(id) FROM messages), 0)) + 1));
CREATE TRIGGER row_ids_only_move_forward BEFORE UPDATE ON row_ids
WHEN NEW.next < OLD.next OR NEW.name IS NOT OLD.name
BEGIN SELECT RAISE(ABORT, 'row ids only move forward'); END;
CREATE TRIGGER row_ids_are_never_deleted BEFORE DELETE ON row_ids
BEGIN SELECT RAISE(ABORT, 'row ids only move forward'); END;
