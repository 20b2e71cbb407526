-- Back to the tombstone triggers of 0001: tombstones judged by the database's clock.
CREATE OR REPLACE FUNCTION sessions_refuse_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_WHEN = 'BEFORE' THEN
        PERFORM 1 FROM sessions WHERE k = NEW.k FOR UPDATE;
    END IF;
    IF EXISTS (SELECT 1 FROM session_tombstones
               WHERE k = NEW.k AND e > floor(extract(epoch FROM clock_timestamp()))::bigint) THEN
        RAISE EXCEPTION 'session was deleted' USING ERRCODE = 'SE001';
    END IF;
    RETURN NEW; -- ignored after the insert
END $$;

CREATE OR REPLACE FUNCTION sessions_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now_s bigint := floor(extract(epoch FROM clock_timestamp()))::bigint;
BEGIN
    IF OLD.e = 0 OR OLD.e > now_s THEN
        INSERT INTO session_tombstones (k, e)
        VALUES (OLD.k, CASE WHEN OLD.e = 0 THEN now_s + 7 * 86400 ELSE OLD.e END)
        ON CONFLICT (k) DO UPDATE SET e = greatest(session_tombstones.e, EXCLUDED.e);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION sessions_tombstone_all() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    now_s bigint := floor(extract(epoch FROM clock_timestamp()))::bigint;
BEGIN
    INSERT INTO session_tombstones (k, e)
    SELECT k, CASE WHEN e = 0 THEN now_s + 7 * 86400 ELSE e END
    FROM sessions WHERE e = 0 OR e > now_s
    ON CONFLICT (k) DO UPDATE SET e = greatest(session_tombstones.e, EXCLUDED.e);
    RETURN NULL;
END $$;
