DROP TABLE IF EXISTS sessions;
DROP TABLE IF EXISTS session_tombstones;
DROP FUNCTION IF EXISTS sessions_refuse_deleted();
DROP FUNCTION IF EXISTS sessions_tombstone();
DROP FUNCTION IF EXISTS sessions_tombstone_all();
DROP FUNCTION IF EXISTS sessions_notify();
