-- Tombstones no longer trust the database's clock. Expiries are written on the store's clock, so
-- the database cannot tell whether a row had "already expired" when it was deleted: a store whose
-- clock is behind by more than a session's remaining life would lose its tombstone, and a late
-- save would bring the session back. Now every delete leaves a tombstone until the row's own
-- expiry, a tombstone refuses writes for as long as it exists, and the store's sweep removes it
-- once that expiry has passed on the store's clock.
--
-- A store with tombstones off (storage.Config.Tombstones) marks its statements with the setting
-- sessions.tombstones = off for their own transaction: they neither leave tombstones nor are
-- refused by them, so such a store is a plain key-value store whoever deleted the key.

CREATE OR REPLACE FUNCTION sessions_refuse_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sessions.tombstones', true) = 'off' THEN
        RETURN NEW;
    END IF;
    IF TG_WHEN = 'BEFORE' THEN
        PERFORM 1 FROM sessions WHERE k = NEW.k FOR UPDATE;
    END IF;
    IF EXISTS (SELECT 1 FROM session_tombstones WHERE k = NEW.k) THEN
        RAISE EXCEPTION 'session was deleted' USING ERRCODE = 'SE001';
    END IF;
    RETURN NEW; -- ignored after the insert
END $$;

CREATE OR REPLACE FUNCTION sessions_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sessions.tombstones', true) = 'off' THEN
        RETURN NULL;
    END IF;
    INSERT INTO session_tombstones (k, e)
    VALUES (OLD.k, CASE WHEN OLD.e = 0
                        THEN floor(extract(epoch FROM clock_timestamp()))::bigint + 7 * 86400
                        ELSE OLD.e END)
    ON CONFLICT (k) DO UPDATE SET e = greatest(session_tombstones.e, EXCLUDED.e);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION sessions_tombstone_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sessions.tombstones', true) = 'off' THEN
        RETURN NULL;
    END IF;
    INSERT INTO session_tombstones (k, e)
    SELECT k, CASE WHEN e = 0 THEN floor(extract(epoch FROM clock_timestamp()))::bigint + 7 * 86400 ELSE e END
    FROM sessions
    ON CONFLICT (k) DO UPDATE SET e = greatest(session_tombstones.e, EXCLUDED.e);
    RETURN NULL;
END $$;
