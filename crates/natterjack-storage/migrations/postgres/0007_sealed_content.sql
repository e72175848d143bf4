-- Natterjack schema, version 7 (PostgreSQL): encryption at rest, second half, run after
-- every row was sealed in the same transaction. Mirrors
-- migrations/sqlite/0007_sealed_content.sql. The old text stays in dead tuples until
-- PostgreSQL rewrites the tables: docs/OPERATIONS.md says to run VACUUM FULL after the
-- upgrade.

ALTER TABLE messages DROP COLUMN body;
ALTER TABLE messages RENAME COLUMN body_sealed TO body;
ALTER TABLE messages ALTER COLUMN body SET NOT NULL;
ALTER TABLE spaces DROP COLUMN name;
ALTER TABLE spaces RENAME COLUMN name_sealed TO name;
ALTER TABLE spaces ALTER COLUMN name SET NOT NULL;

-- Content stays immutable: an update may only re-seal the value under another data key
-- that exists and is not destroyed (rotation).
CREATE FUNCTION natterjack_only_reseal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(NEW) - TG_ARGV[0] - 'key_id') IS DISTINCT FROM (to_jsonb(OLD) - TG_ARGV[0] - 'key_id')
       OR NEW.key_id = OLD.key_id
       OR NOT EXISTS (SELECT 1 FROM data_keys WHERE id = NEW.key_id AND wrapped IS NOT NULL) THEN
        RAISE EXCEPTION '%', TG_ARGV[1];
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER spaces_are_only_resealed BEFORE UPDATE ON spaces
FOR EACH ROW EXECUTE FUNCTION natterjack_only_reseal('name', 'spaces are immutable: an update only re-seals the name under another key');
CREATE TRIGGER messages_are_only_resealed BEFORE UPDATE ON messages
FOR EACH ROW EXECUTE FUNCTION natterjack_only_reseal('body', 'messages are immutable: an update only re-seals the body under another key');
CREATE TRIGGER data_keys_are_never_deleted BEFORE DELETE ON data_keys
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('data keys are destroyed, never deleted');

-- Row ids are reserved in blocks before the insert, because the seal's associated data
-- names the row: `next` is the first id not handed out yet, and it only moves forward, so
-- no id (a deleted row's included) is ever used twice. Mirrors the SQLite migration.
CREATE TABLE row_ids (
    name TEXT   PRIMARY KEY,
    next BIGINT NOT NULL CHECK (next > 0)
);
INSERT INTO row_ids (name, next) VALUES
    ('spaces', greatest((SELECT coalesce(max(id), 0) FROM spaces), (SELECT last_value FROM spaces_id_seq WHERE is_called)) + 1),
    ('messages', greatest((SELECT coalesce(max(id), 0) FROM messages), (SELECT last_value FROM messages_id_seq WHERE is_called)) + 1);

CREATE FUNCTION natterjack_row_ids_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.next < OLD.next OR NEW.name IS DISTINCT FROM OLD.name THEN
        RAISE EXCEPTION 'row ids only move forward';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER row_ids_only_move_forward BEFORE UPDATE ON row_ids
FOR EACH ROW EXECUTE FUNCTION natterjack_row_ids_forward();
CREATE TRIGGER row_ids_are_never_deleted BEFORE DELETE ON row_ids
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('row ids only move forward');
CREATE TRIGGER row_ids_are_never_truncated BEFORE TRUNCATE ON row_ids
FOR EACH STATEMENT EXECUTE FUNCTION natterjack_refuse_change('row ids only move forward');
