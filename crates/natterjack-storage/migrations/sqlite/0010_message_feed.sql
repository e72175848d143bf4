-- Natterjack schema, version 10 (SQLite): nothing to change. On PostgreSQL this version
-- announces new messages to every node sharing the database; a SQLite file is served by
-- one process, whose watchers see what it posts without any announcement. The version
-- exists so that both backends keep one numbering.
SELECT 1;
