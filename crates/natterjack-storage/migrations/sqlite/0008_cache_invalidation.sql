-- Natterjack schema, version 8: a counter of changes to what servers keep in memory (user
-- rows behind cached logins, memberships behind access checks). Triggers move it on every
-- change, whichever connection makes it (a server, or the operator's CLI in another
-- process); a server polls it and drops its cached rows when it moves. A server's own
-- writes drop the affected entries at once, without waiting for the poll.

CREATE TABLE cache_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO cache_epoch (id, n) VALUES (1, 0);

CREATE TRIGGER users_updated_move_cache_epoch AFTER UPDATE ON users
BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER memberships_inserted_move_cache_epoch AFTER INSERT ON memberships
BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER memberships_updated_move_cache_epoch AFTER UPDATE ON memberships
BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER memberships_deleted_move_cache_epoch AFTER DELETE ON memberships
BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER external_identities_inserted_move_cache_epoch AFTER INSERT ON external_identities
BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;

-- The counter only moves forward and is never removed.
CREATE TRIGGER cache_epoch_only_moves_forward BEFORE UPDATE ON cache_epoch
WHEN NEW.n <= OLD.n OR NEW.id <> OLD.id
BEGIN SELECT RAISE(ABORT, 'the cache epoch only moves forward'); END;
CREATE TRIGGER cache_epoch_is_never_deleted BEFORE DELETE ON cache_epoch
BEGIN SELECT RAISE(ABORT, 'the cache epoch is never deleted'); END;
