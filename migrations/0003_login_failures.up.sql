-- Failed logins, counted per key for throttling (app/users/throttle.go). A key is 'account:' and a
-- hash of the normalised email (known or not: throttling must not tell which emails exist), or
-- 'address:' and the client address. One row per key; a failed attempt is one
-- INSERT ... ON CONFLICT ... DO UPDATE, so that every instance counts in the same row, exactly.
-- A row whose last failure is older than the window is forgotten: the next failure starts again
-- at 1, and the sweep deletes it.
CREATE TABLE login_failures (
    key          text PRIMARY KEY,
    failures     integer NOT NULL,
    last_failure timestamptz NOT NULL
);
CREATE INDEX login_failures_last_failure ON login_failures (last_failure);
