-- Natterjack schema, version 8 (PostgreSQL): every change to what the servers' read cache
-- holds (user rows, memberships, the identities linked to users) is announced on the
-- channel `natterjack_invalidate`, so that every node sharing the database drops its copy.
--
-- Triggers, not the application, announce the changes, so that writes of any process are
-- covered: another node, the operator CLI (`natterjack user passwd`, `user admin`), an
-- operator's own SQL. A notification is delivered when the transaction commits, and not at
-- all if it rolls back. The functions run as the role whose statement fired them (no
-- SECURITY DEFINER): pg_notify needs no privilege, so the app role fires them with the
-- grants it holds already.
--
-- Payloads (read by natterjack_core::store_cache::Invalidation::from_payload):
--   u:<user id>             a user row, or an identity linked to that user
--   m:<space id>:<user id>  what that user holds on that space
--   *                       anything (TRUNCATE)

CREATE FUNCTION natterjack_announce_user_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('natterjack_invalidate', 'u:' || OLD.id);
    IF TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id THEN
        PERFORM pg_notify('natterjack_invalidate', 'u:' || NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION natterjack_announce_membership_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('natterjack_invalidate', 'm:' || OLD.space_id || ':' || OLD.user_id);
    END IF;
    IF TG_OP = 'INSERT'
       OR (TG_OP = 'UPDATE'
           AND (NEW.space_id, NEW.user_id) IS DISTINCT FROM (OLD.space_id, OLD.user_id)) THEN
        PERFORM pg_notify('natterjack_invalidate', 'm:' || NEW.space_id || ':' || NEW.user_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION natterjack_announce_identity_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('natterjack_invalidate', 'u:' || OLD.user_id);
    RETURN NULL;
END;
$$;

CREATE FUNCTION natterjack_announce_everything_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('natterjack_invalidate', '*');
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_changes_are_announced AFTER UPDATE OR DELETE ON users
FOR EACH ROW EXECUTE FUNCTION natterjack_announce_user_change();
CREATE TRIGGER memberships_changes_are_announced AFTER INSERT OR UPDATE OR DELETE ON memberships
FOR EACH ROW EXECUTE FUNCTION natterjack_announce_membership_change();
-- Links are never changed by the API (no UPDATE or DELETE grant), only by an operator.
CREATE TRIGGER external_identities_changes_are_announced AFTER UPDATE OR DELETE ON external_identities
FOR EACH ROW EXECUTE FUNCTION natterjack_announce_identity_change();
CREATE TRIGGER users_truncation_is_announced AFTER TRUNCATE ON users
FOR EACH STATEMENT EXECUTE FUNCTION natterjack_announce_everything_changed();
CREATE TRIGGER memberships_truncation_is_announced AFTER TRUNCATE ON memberships
FOR EACH STATEMENT EXECUTE FUNCTION natterjack_announce_everything_changed();
CREATE TRIGGER external_identities_truncation_is_announced AFTER TRUNCATE ON external_identities
FOR EACH STATEMENT EXECUTE FUNCTION natterjack_announce_everything_changed();
