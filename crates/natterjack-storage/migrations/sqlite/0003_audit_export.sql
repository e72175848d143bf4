-- Natterjack schema, version 3: audit export and alerts.
--
-- 1. The audit log admits a third phase, `alert` (anomaly records). SQLite cannot alter a
--    CHECK constraint, so the table is rebuilt: same columns, same rows, same indexes, same
--    append-only triggers. DROP TABLE fires no DELETE triggers, and this migration runs on
--    the owner connection, never on the server's (the authorizer refuses all DDL there).
-- 2. Each SIEM sink's cursor: the id of the newest audit record the sink has confirmed. The
--    audit table is the outbox; the cursor only moves forward (the server may insert a cursor
--    and update `delivered_id`, nothing else).

CREATE TABLE audit_log_v3 (
    id          INTEGER PRIMARY KEY CHECK (id > 0),
    time        INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    phase       TEXT    NOT NULL CHECK (phase IN ('intent', 'complete', 'alert')),
    transport   TEXT    NOT NULL,
    client_ip   TEXT    NOT NULL,
    principal   TEXT,
    auth_method TEXT    NOT NULL,
    operation   TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    status      INTEGER,
    decision    TEXT    NOT NULL,
    reason      TEXT,
    duration_us INTEGER NOT NULL,
    mac         BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;

INSERT INTO audit_log_v3 (id, time, request_id, phase, transport, client_ip, principal, auth_method,
                          operation, target, status, decision, reason, duration_us, mac)
SELECT id, time, request_id, phase, transport, client_ip, principal, auth_method,
       operation, target, status, decision, reason, duration_us, mac
FROM audit_log ORDER BY id;

DROP TABLE audit_log;
ALTER TABLE audit_log_v3 RENAME TO audit_log;

CREATE INDEX audit_log_by_time ON audit_log (time);
CREATE INDEX audit_log_by_principal ON audit_log (principal, id);

CREATE TRIGGER audit_log_is_never_updated BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_is_never_deleted BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE audit_export_cursor (
    sink         TEXT    PRIMARY KEY CHECK (length(sink) BETWEEN 1 AND 32),
    delivered_id INTEGER NOT NULL CHECK (delivered_id >= 0)
) STRICT;

CREATE TRIGGER audit_export_cursor_only_moves_forward BEFORE UPDATE ON audit_export_cursor
WHEN NEW.delivered_id < OLD.delivered_id
BEGIN SELECT RAISE(ABORT, 'an export cursor only moves forward'); END;
CREATE TRIGGER audit_export_cursor_is_never_deleted BEFORE DELETE ON audit_export_cursor
BEGIN SELECT RAISE(ABORT, 'export cursors are never deleted'); END;
