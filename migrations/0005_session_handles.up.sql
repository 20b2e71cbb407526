-- What a user sees of their sessions (GET /sessions), kept on the session's own row so that
-- whatever removes the row (logout, expiry, logging out everywhere, a password change, Reset)
-- removes it too.
--   handle  names the session to its owner: random, given to the row when it is first written
--           and kept for its life. Neither the cookie nor its hash: it is shown to the user and
--           lets them end the session, never use it. (Adding a column with a volatile default
--           rewrites the table once, giving every existing session a handle of its own.)
--   info    what the application recorded at login (storage.Store.Bind): user agent and client
--           address. Never the cookie.
ALTER TABLE sessions
    ADD COLUMN handle text NOT NULL DEFAULT gen_random_uuid()::text,
    ADD COLUMN info   jsonb;
