package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgfault"
)

// Table is the sessions table created by the project's migrations; Channel is the LISTEN
// channel its trigger notifies.
const (
	Table   = "sessions"
	Channel = "sessions"
)

// sqlStateDeleted is raised by the sessions_refuse_deleted trigger (migrations/0001).
const sqlStateDeleted = "SE001"

// tier is the source of truth behind the memory tier. pgTier is the real one; tests use a
// stand-in to drive race and error paths deterministically. Keys are already hashed.
type tier interface {
	// get returns the value and its expiry in unix seconds (0: none), or nil when the key is
	// absent. It may return rows that are already expired; the Store checks e.
	get(ctx context.Context, key string) (val []byte, e int64, err error)
	// set writes val with expiry e in unix seconds (0: none), filed under owner ("": none);
	// ErrDeleted when the key has a tombstone.
	set(ctx context.Context, key string, val []byte, e int64, owner string) error
	// touch moves the expiry of key's row to e if the row has one and e is later (and writes
	// nothing otherwise), and returns the row's value and expiry; ErrDeleted when the key has no
	// row live at now (unix seconds).
	touch(ctx context.Context, key string, e, now int64) (val []byte, rowE int64, err error)
	delete(ctx context.Context, key string) error
	reset(ctx context.Context) error
	// sweep deletes rows and tombstones expired at now.
	sweep(ctx context.Context, now time.Time) error
}

// pgTier runs the store's statements on the caller's pool, on the table layout of
// gofiber/storage/postgres/v3 (k, v, e) plus the migrations' triggers. postgres/v3 itself is
// not used: its writes take the expiry from time.Now rather than the store's clock, its
// expiry clean-up runs without a deadline on a goroutine Close must wait for, and it needs a
// pool of its own (which it closes); every statement here runs on the caller's pool under the
// store's deadline, and the store's sweeper runs the clean-up.
type pgTier struct {
	pool       *pgxpool.Pool
	query      string
	tombstones bool
}

func newPGTier(pool *pgxpool.Pool, tombstones bool) *pgTier {
	return &pgTier{pool: pool, query: "SELECT v, e FROM " + Table + " WHERE k = $1", tombstones: tombstones}
}

// noTombstones, as a condition of a statement's WHERE, sets sessions.tombstones = off until the
// end of the statement's transaction, before the statement writes or deletes a row: the
// migration's triggers then neither leave a tombstone nor refuse a write because of one. It is
// how a store with Config.Tombstones off, and the sweep of expired rows, talk to them.
const noTombstones = "set_config('sessions.tombstones', 'off', true) = 'off'"

// tombstoneRule returns " AND noTombstones" without tombstones, "" with them.
func tombstoneRule(tombstones bool) string {
	if tombstones {
		return ""
	}
	return " AND " + noTombstones
}

func (t *pgTier) get(ctx context.Context, key string) ([]byte, int64, error) {
	var (
		v []byte
		e int64
	)
	// A read is safe to run twice: a pooled connection the server closed costs one more try.
	err := pgfault.Retry(ctx, t.pool, func(q pgfault.Querier) error {
		return q.QueryRow(ctx, t.query, key).Scan(&v, &e)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return v, e, nil
}

func (t *pgTier) set(ctx context.Context, key string, val []byte, e int64, owner string) error {
	_, err := t.pool.Exec(ctx, "INSERT INTO "+Table+" (k, v, e, owner) "+
		"SELECT $1::text, $2::bytea, $3::bigint, NULLIF($4::text, '') WHERE true"+tombstoneRule(t.tombstones)+
		" ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, e = EXCLUDED.e, owner = EXCLUDED.owner", key, val, e, owner)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == sqlStateDeleted {
		return ErrDeleted
	}
	return err
}

// touchSQL updates the row only when that moves its expiry later, which the migration's trigger
// notifies nobody of, and otherwise returns the row as it is: the CTE "cur" reads the snapshot
// from before the UPDATE. The third column says whether the answer is settled: true when the
// UPDATE moved the row, or when the row needed no move. It is false when the row needed a move
// and the UPDATE found nothing to move: another transaction changed or deleted the row while
// the statement waited for it, and "cur" shows the row as it was before.
const touchSQL = `WITH cur AS (SELECT v, e FROM ` + Table + ` WHERE k = $1 AND (e = 0 OR e > $3)),
moved AS (UPDATE ` + Table + ` SET e = $2 WHERE k = $1 AND e <> 0 AND e > $3 AND e < $2 RETURNING v, e)
SELECT v, e, true FROM moved
UNION ALL SELECT v, e, NOT (e <> 0 AND e < $2) FROM cur WHERE NOT EXISTS (SELECT FROM moved)`

// touchAttempts bounds the runs of touchSQL when the row keeps changing under it.
const touchAttempts = 3

func (t *pgTier) touch(ctx context.Context, key string, e, now int64) ([]byte, int64, error) {
	for range touchAttempts {
		var (
			v       []byte
			rowE    int64
			settled bool
		)
		err := t.pool.QueryRow(ctx, touchSQL, key, e, now).Scan(&v, &rowE, &settled)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, 0, ErrDeleted
		}
		if err != nil {
			return nil, 0, err
		}
		if settled {
			return v, rowE, nil
		}
		// The row changed under the UPDATE: a new statement sees what was committed.
	}
	return nil, 0, fmt.Errorf("the row of the key changed %d times while it was being touched", touchAttempts)
}

// delete deletes key's row; the trigger leaves its tombstone unless tombstones are off.
func (t *pgTier) delete(ctx context.Context, key string) error {
	_, err := t.pool.Exec(ctx, "DELETE FROM "+Table+" WHERE k = $1"+tombstoneRule(t.tombstones), key)
	return err
}

func (t *pgTier) reset(ctx context.Context) error {
	if t.tombstones {
		_, err := t.pool.Exec(ctx, "TRUNCATE "+Table)
		return err
	}
	b := &pgx.Batch{}
	b.Queue("TRUNCATE " + Table)
	b.Queue("DELETE FROM session_tombstones")
	return t.pool.SendBatch(ctx, b).Close()
}

// sweep deletes rows expired at now (the store's clock), which need no tombstone, and the
// tombstones of rows that would have expired by now, in one round trip. It is the only thing
// that removes a tombstone: until it does, the tombstone refuses every write of its key.
func (t *pgTier) sweep(ctx context.Context, now time.Time) error {
	b := &pgx.Batch{}
	b.Queue("DELETE FROM "+Table+" WHERE e <= $1 AND e != 0 AND "+noTombstones, now.Unix())
	b.Queue("DELETE FROM session_tombstones WHERE e <= $1", now.Unix())
	return t.pool.SendBatch(ctx, b).Close()
}

// checkSchema makes sure the migrations' table, triggers and columns are in place: without the
// triggers deleted sessions could come back and go unnoticed by other instances; without the
// columns every write with an owner would fail; with tombstone functions that ignore the
// sessions.tombstones setting (an older schema), tombstones would ignore Config.Tombstones.
func checkSchema(ctx context.Context, db *pgxpool.Pool) error {
	var triggers, columns, functions int
	err := db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_trigger
		  WHERE tgrelid = to_regclass($1)
		    AND tgname IN ('sessions_refuse_deleted', 'sessions_refuse_deleted_after',
			'sessions_tombstone', 'sessions_tombstone_all',
			'sessions_notify', 'sessions_notify_truncate')),
		(SELECT count(*) FROM pg_attribute
		  WHERE attrelid = to_regclass($1) AND NOT attisdropped
		    AND attname IN ('owner', 'handle')),
		(SELECT count(*) FROM pg_proc
		  WHERE proname IN ('sessions_refuse_deleted', 'sessions_tombstone', 'sessions_tombstone_all')
		    AND prosrc LIKE '%sessions.tombstones%')`,
		Table).Scan(&triggers, &columns, &functions)
	if err != nil {
		return fmt.Errorf("storage: check schema: %w", err)
	}
	if triggers != 6 || columns != 2 || functions != 3 {
		return errors.New("storage: table " + Table + " is missing or not migrated: apply the migrations first (migrate up)")
	}
	return nil
}
