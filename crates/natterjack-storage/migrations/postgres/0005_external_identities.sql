-- Natterjack schema, version 5 (PostgreSQL): external identities linked to local accounts.
-- Mirrors migrations/sqlite/0005_external_identities.sql.

CREATE TABLE external_identities (
    source     TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (source, subject)
);

CREATE INDEX external_identities_by_user ON external_identities (user_id);
