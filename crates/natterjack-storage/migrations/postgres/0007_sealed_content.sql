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

-- Content stays immutable: an update may only re-seal the value (TG_ARGV[0]) under
-- another data key that exists and is not destroyed (rotation, or the second step of an
-- insert, which first writes key 0).
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
