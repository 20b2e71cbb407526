DROP INDEX IF EXISTS login_failures_user_id;
ALTER TABLE login_failures DROP COLUMN IF EXISTS user_id, DROP COLUMN IF EXISTS consecutive;
DELETE FROM login_failures; -- keyed hashes the older code does not make
