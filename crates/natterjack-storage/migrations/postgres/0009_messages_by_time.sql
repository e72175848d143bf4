-- Natterjack schema, version 9: messages by space and time, so that a `since` matching
-- few messages reads those messages, not the whole space (the newest-first walk of
-- `messages_by_space` has to pass every older message to learn that none is recent).

CREATE INDEX messages_by_time ON messages (space_id, created_at);
