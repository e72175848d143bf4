-- Natterjack schema, version 5: external identities (an OpenID Connect issuer's subject, a
-- directory's user) linked to local accounts. Keyed by source and subject, so a name an
-- outside source chooses never selects a local account by itself.

CREATE TABLE external_identities (
    source     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (source, subject)
) STRICT;

CREATE INDEX external_identities_by_user ON external_identities (user_id);
