-- Natterjack schema, version 10 (PostgreSQL): every new message is announced on the channel
-- `natterjack_posted`, so that a `WatchMessages` stream on any node sharing the database
-- receives messages posted on every other node.
--
-- A trigger, as in version 8: the notification is part of the insert's transaction, so it
-- is delivered when the message commits and never for one that rolled back, and the
-- function runs as the inserting role (pg_notify needs no privilege).
--
-- Payload (read by natterjack_storage::postgres::PgPosted): <space id>:<message id>. Only
-- ids: the message's text is sealed at rest, and each node reads it through its store.

CREATE FUNCTION natterjack_announce_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('natterjack_posted', NEW.space_id || ':' || NEW.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_are_announced AFTER INSERT ON messages
FOR EACH ROW EXECUTE FUNCTION natterjack_announce_message();
