-- Login throttling keeps two counts per key (storage/users/throttle.go): failures, the throttle's
-- count, which a key forgets once it has been quiet for the window after its lockout; and
-- consecutive, every failure since the key's last success, which only a success or a password
-- change clears, for the hard limit. user_id names the account of an account or device key
-- whose email is a user's, so that a password change can clear its counts in the same statement.
-- Keys are now keyed hashes: the rows under the old unkeyed ones match nothing and go.
DELETE FROM login_failures;
ALTER TABLE login_failures
    ADD COLUMN consecutive integer NOT NULL DEFAULT 0,
    ADD COLUMN user_id bigint;
CREATE INDEX login_failures_user_id ON login_failures (user_id) WHERE user_id IS NOT NULL;
