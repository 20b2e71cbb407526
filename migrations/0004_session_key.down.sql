DROP TABLE IF EXISTS session_key;
