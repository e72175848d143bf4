-- Natterjack schema, version 2: the audit log. Append-only: the authorizer lets the server
-- insert and read it, nothing else, and these triggers refuse changes from any connection.
-- Ids are assigned by the single audit writer, consecutively, because each record's MAC
-- covers its id and its predecessor's MAC.

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY CHECK (id > 0),
    time        INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    phase       TEXT    NOT NULL CHECK (phase IN ('intent', 'complete')),
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

CREATE INDEX audit_log_by_time ON audit_log (time);
CREATE INDEX audit_log_by_principal ON audit_log (principal, id);

CREATE TRIGGER audit_log_is_never_updated BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_is_never_deleted BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
