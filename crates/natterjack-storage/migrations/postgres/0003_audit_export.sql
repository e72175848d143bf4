-- Natterjack schema, version 3 (PostgreSQL): audit export and alerts.
--
-- 1. The audit log admits a third phase, `alert` (anomaly records).
-- 2. Each SIEM sink's cursor: the id of the newest audit record the sink has confirmed. The
--    audit table is the outbox; the cursor only moves forward. The app role may insert a
--    cursor and update `delivered_id` (see grants.rs), nothing else.
--
-- Mirrors migrations/sqlite/0003_audit_export.sql.

ALTER TABLE audit_log DROP CONSTRAINT audit_log_phase_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_phase_check
    CHECK (phase IN ('intent', 'complete', 'alert'));

CREATE TABLE audit_export_cursor (
    sink         TEXT   PRIMARY KEY CHECK (length(sink) BETWEEN 1 AND 32),
    delivered_id BIGINT NOT NULL CHECK (delivered_id >= 0)
);

CREATE FUNCTION natterjack_cursor_only_moves_forward() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.delivered_id < OLD.delivered_id THEN
        RAISE EXCEPTION 'an export cursor only moves forward';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_export_cursor_only_moves_forward BEFORE UPDATE ON audit_export_cursor
FOR EACH ROW EXECUTE FUNCTION natterjack_cursor_only_moves_forward();
CREATE TRIGGER audit_export_cursor_is_never_deleted BEFORE DELETE ON audit_export_cursor
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('export cursors are never deleted');
