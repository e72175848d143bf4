-- Natterjack schema, version 4 (PostgreSQL): summaries of coalesced refusals.
--
-- The audit log admits a fourth phase, `summary` (rate-limit refusals of one key within one
-- window, beyond the first few recorded one by one), and a `count` column: how many
-- refusals a summary stands for, NULL on every other record. The app role's grants are on
-- the table (SELECT, INSERT), so they cover the new column.
--
-- Mirrors migrations/sqlite/0004_audit_summaries.sql.

ALTER TABLE audit_log DROP CONSTRAINT audit_log_phase_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_phase_check
    CHECK (phase IN ('intent', 'complete', 'alert', 'summary'));
ALTER TABLE audit_log ADD COLUMN count BIGINT
    CHECK (count IS NULL OR (phase = 'summary' AND count > 0));
