-- What a session's list entry shows (user agent, address) now lives in the session's own value,
-- written with it in one statement; the separate column goes. Sessions from before keep working
-- and list without user agent or address.
--
-- Running several instances: an instance built before this migration writes this column at
-- every login. Upgrade every instance first (with MIGRATE_ON_START=false), then migrate.
ALTER TABLE sessions DROP COLUMN info;
