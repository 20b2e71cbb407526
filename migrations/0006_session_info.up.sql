-- What a session's list entry shows (user agent, address) now lives in the session's own value,
-- written with it in one statement; the separate column goes.
ALTER TABLE sessions DROP COLUMN info;
