-- The key under which session ids are signed (storage/keys; unused when SESSION_KEYS is set). One row: the first server to
-- start writes it, every server reads it, so that every instance accepts the ids of the others
-- without a setting to keep in step. Deleting the row and restarting every instance ends every
-- session (a new key makes every id in circulation invalid).
CREATE TABLE session_key (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id), -- at most one row
    key bytea NOT NULL CHECK (length(key) >= 32)
);
