-- Sessions: the source of truth behind the tiered store (storage/).
-- Columns k, v, e are the layout github.com/gofiber/storage/postgres/v3 reads and writes;
-- k holds the SHA-256 (hex) of the session cookie, never the cookie itself.
-- owner lets every session of one user be ended at once (log out everywhere).
-- handle names the session to its owner (GET /sessions, DELETE /sessions/{id}): random, given to
-- the row when it is first written and kept for its life, on the row itself so that whatever
-- removes the row removes it too. Neither the cookie nor its hash: it is shown to the user and
-- lets them end the session, never use it.
CREATE TABLE sessions (
    k      text PRIMARY KEY NOT NULL DEFAULT '',
    v      bytea NOT NULL,
    e      bigint NOT NULL DEFAULT 0, -- expiry, unix seconds by the store's clock; 0 = none
    owner  text,
    handle text NOT NULL DEFAULT gen_random_uuid()::text
);
CREATE INDEX sessions_e_idx ON sessions (e);
CREATE INDEX sessions_owner_idx ON sessions (owner) WHERE owner IS NOT NULL;

-- A tombstone remembers a deleted session until the moment it would have expired, so that a
-- request that loaded the session before a logout cannot save it back afterwards (UPSERT would
-- re-insert the row). Expiries are the store's clock, which the database cannot judge: every
-- delete leaves a tombstone until the row's own expiry, a tombstone refuses writes for as long as
-- it exists, and the store's sweep removes it once that expiry has passed on the store's clock.
-- A store with tombstones off (storage.Config.Tombstones) marks its statements with the setting
-- sessions.tombstones = off: they neither leave tombstones nor are refused by them.
CREATE TABLE session_tombstones (
    k text PRIMARY KEY,
    e bigint NOT NULL -- unix seconds after which the tombstone may be swept
);
CREATE INDEX session_tombstones_e_idx ON session_tombstones (e);

-- Refuse writes to a deleted session. Before the insert, the row lock serialises the check with
-- a concurrent DELETE of the same key: we wait for it to commit, then see its tombstone (READ
-- COMMITTED gives each statement of a volatile function a fresh snapshot). After the insert,
-- the same check once more: when no row existed, nothing was locked, and another transaction
-- may have created and deleted the key (leaving a tombstone) in between.
CREATE FUNCTION sessions_refuse_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER sessions_refuse_deleted BEFORE INSERT ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_refuse_deleted();
CREATE TRIGGER sessions_refuse_deleted_after AFTER INSERT ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_refuse_deleted();

-- Leave a tombstone for every deleted session. A session without expiry keeps its tombstone for
-- seven days.
CREATE FUNCTION sessions_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER sessions_tombstone AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_tombstone();

-- TRUNCATE (the store's Reset) fires no row triggers: leave the same tombstones first.
CREATE FUNCTION sessions_tombstone_all() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER sessions_tombstone_all BEFORE TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_tombstone_all();

-- Tell every instance (LISTEN sessions) which key changed, whoever changed it.
--   d <k>                    the row is gone
--   u <k> <e> <sha256(v)>    the row now holds this value and expiry
--   r                        every row is gone (TRUNCATE)
-- An update that only moves the expiry later sends nothing: a cached copy that expires at the
-- old time is still correct, and a touch must not cost a NOTIFY.
CREATE FUNCTION sessions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('sessions', 'r');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') AND (TG_OP = 'DELETE' OR NEW.k <> OLD.k) THEN
        PERFORM pg_notify('sessions', 'd ' || OLD.k);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (
           NEW.k <> OLD.k
        OR NEW.v IS DISTINCT FROM OLD.v
        OR (NEW.e <> 0 AND (OLD.e = 0 OR NEW.e < OLD.e)))) THEN
        PERFORM pg_notify('sessions', 'u ' || NEW.k || ' ' || NEW.e || ' ' || encode(sha256(NEW.v), 'hex'));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sessions_notify AFTER INSERT OR UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_notify();
CREATE TRIGGER sessions_notify_truncate AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_notify();
