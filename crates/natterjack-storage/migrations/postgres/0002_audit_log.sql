-- Natterjack schema, version 2 (PostgreSQL): the audit log. Append-only: the app role may
-- insert and read it, nothing else, and these triggers refuse UPDATE, DELETE and TRUNCATE
-- from any role, the owner included. Ids are assigned by the single audit writer,
-- consecutively, because each record's MAC covers its id and its predecessor's MAC: they
-- are not an identity column, and a duplicate id is a unique violation the writer detects.
--
-- Mirrors migrations/sqlite/0002_audit_log.sql.

CREATE TABLE audit_log (
    id          BIGINT  PRIMARY KEY CHECK (id > 0),
    time        BIGINT  NOT NULL,
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
    duration_us BIGINT  NOT NULL,
    mac         BYTEA   NOT NULL CHECK (octet_length(mac) = 32)
);

CREATE INDEX audit_log_by_time ON audit_log (time);
-- The admin query filters on the principal case-insensitively (SQLite: COLLATE NOCASE).
CREATE INDEX audit_log_by_principal ON audit_log (lower(principal), id);

CREATE TRIGGER audit_log_is_never_updated BEFORE UPDATE ON audit_log
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('the audit log is append-only');
CREATE TRIGGER audit_log_is_never_deleted BEFORE DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION natterjack_refuse_change('the audit log is append-only');
-- TRUNCATE fires no row triggers: it needs its own, per statement.
CREATE TRIGGER audit_log_is_never_truncated BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION natterjack_refuse_change('the audit log is append-only');
