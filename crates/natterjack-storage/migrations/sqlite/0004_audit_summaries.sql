-- Natterjack schema, version 4: summaries of coalesced refusals.
--
-- The audit log admits a fourth phase, `summary` (rate-limit refusals of one key within one
-- window, beyond the first few recorded one by one), and a `count` column: how many
-- refusals a summary stands for, NULL on every other record. SQLite cannot alter a CHECK
-- constraint, so the table is rebuilt as in version 3: same rows, same indexes, same
-- append-only triggers. This runs on the owner connection, never on the server's.

CREATE TABLE audit_log_v4 (
    id          INTEGER PRIMARY KEY CHECK (id > 0),
    time        INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    phase       TEXT    NOT NULL CHECK (phase IN ('intent', 'complete', 'alert', 'summary')),
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
    mac         BLOB    NOT NULL CHECK (length(mac) = 32),
    count       INTEGER CHECK (count IS NULL OR (phase = 'summary' AND count > 0))
) STRICT;

INSERT INTO audit_log_v4 (id, time, request_id, phase, transport, client_ip, principal, auth_method,
                          operation, target, status, decision, reason, duration_us, mac)
SELECT id, time, request_id, phase, transport, client_ip, principal, auth_method,
       operation, target, status, decision, reason, duration_us, mac
FROM audit_log ORDER BY id;

DROP TABLE audit_log;
ALTER TABLE audit_log_v4 RENAME TO audit_log;

CREATE INDEX audit_log_by_time ON audit_log (time);
CREATE INDEX audit_log_by_principal ON audit_log (principal, id);

CREATE TRIGGER audit_log_is_never_updated BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_is_never_deleted BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
