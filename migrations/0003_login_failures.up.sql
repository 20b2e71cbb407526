-- Failed logins, counted per key for login throttling (storage/users/throttle.go). A key is a
-- keyed hash of an account's normalised email (known or not: throttling must not tell which
-- emails exist, and reading the table must not confirm a guessed one), of a device cookie, or
-- the client's address prefix. One row per key; a failed attempt is one
-- INSERT ... ON CONFLICT ... DO UPDATE, so that every instance counts in the same row, exactly.
--   failures     the throttle's count, forgotten once the key has been quiet for the window
--                after its lockout
--   consecutive  every failure since the key's last success, which only a success or a
--                password change clears: the hard limit's count
--   user_id      the account of an account or device key whose email is a user's, so that a
--                password change clears its counts in the same statement
CREATE TABLE login_failures (
    key          text PRIMARY KEY,
    failures     integer NOT NULL,
    consecutive  integer NOT NULL DEFAULT 0,
    last_failure timestamptz NOT NULL,
    user_id      bigint
);
CREATE INDEX login_failures_last_failure ON login_failures (last_failure);
CREATE INDEX login_failures_user_id ON login_failures (user_id) WHERE user_id IS NOT NULL;
