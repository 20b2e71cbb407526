package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/storage/postgres/v3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
	// set writes val with an expiry of exp from now (0: none); ErrDeleted when the key has a
	// tombstone.
	set(ctx context.Context, key string, val []byte, exp time.Duration) error
	delete(ctx context.Context, key string) error
	reset(ctx context.Context) error
	close() error
}

// pgTier is gofiber/storage/postgres/v3 plus the one read it cannot do: postgres/v3's Get does
// not return the expiry, which the memory tier needs, so reads are a SELECT v, e on the caller's
// pool.
//
// postgres/v3 closes the pool it is given, both in Close and when its constructor fails, so it
// gets a pool of its own built from the caller's configuration: the caller's pool is never
// closed by the store.
type pgTier struct {
	pool  *pgxpool.Pool // the caller's: reads, owner queries, tombstone sweep
	own   *pgxpool.Pool // postgres/v3's: writes, deletes, reset, its expiry clean-up
	pg    *postgres.Storage
	query string
	now   func() time.Time
}

func newPGTier(ctx context.Context, pool *pgxpool.Pool, cfg Config) (t *pgTier, err error) {
	ownCfg := pool.Config()
	// postgres/v3's expiry clean-up runs without a context; a server-side statement timeout
	// bounds it (and Close, which waits for it) as QueryTimeout bounds every other call.
	ownCfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(cfg.QueryTimeout.Milliseconds(), 1), 10)
	own, err := pgxpool.NewWithConfig(ctx, ownCfg)
	if err != nil {
		return nil, fmt.Errorf("storage: open pool: %w", err)
	}
	// postgres/v3 panics on any failure at start-up (ping, schema check). Turn that into an
	// error the caller can report.
	defer func() {
		if r := recover(); r != nil {
			own.Close()
			t, err = nil, fmt.Errorf("storage: start postgres tier: %v", r)
		}
	}()
	pg := postgres.NewWithContext(ctx, postgres.Config{DB: own, Table: Table, GCInterval: cfg.SweepInterval})
	return &pgTier{
		pool:  pool,
		own:   own,
		pg:    pg,
		query: "SELECT v, e FROM " + Table + " WHERE k = $1",
		now:   cfg.Now,
	}, nil
}

func (t *pgTier) get(ctx context.Context, key string) ([]byte, int64, error) {
	var (
		v []byte
		e int64
	)
	err := t.pool.QueryRow(ctx, t.query, key).Scan(&v, &e)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return v, e, nil
}

func (t *pgTier) set(ctx context.Context, key string, val []byte, exp time.Duration) error {
	if exp > 0 {
		// postgres/v3 adds exp to time.Now; shift it so the row expires exp after the store's
		// clock, which every expiry check of the store uses (they differ only under a test clock).
		exp = max(exp+time.Until(t.now()), time.Nanosecond)
	}
	err := t.pg.SetWithContext(ctx, key, val, exp)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == sqlStateDeleted {
		return ErrDeleted
	}
	return err
}

func (t *pgTier) delete(ctx context.Context, key string) error {
	return t.pg.DeleteWithContext(ctx, key)
}

func (t *pgTier) reset(ctx context.Context) error {
	return t.pg.ResetWithContext(ctx)
}

// close stops postgres/v3's clean-up goroutine and closes the pool it owns.
func (t *pgTier) close() error {
	return t.pg.Close()
}

// checkSchema makes sure the migrations' triggers are in place: without them postgres/v3 would
// quietly create a bare table, and deleted sessions could come back and go unnoticed by other
// instances.
func checkSchema(ctx context.Context, db *pgxpool.Pool) error {
	var n int
	err := db.QueryRow(ctx, `SELECT count(*) FROM pg_trigger
		WHERE tgrelid = to_regclass($1)
		AND tgname IN ('sessions_refuse_deleted', 'sessions_refuse_deleted_after',
			'sessions_tombstone', 'sessions_tombstone_all',
			'sessions_notify', 'sessions_notify_truncate')`,
		Table).Scan(&n)
	if err != nil {
		return fmt.Errorf("storage: check schema: %w", err)
	}
	if n != 6 {
		return errors.New("storage: table " + Table + " is missing or not migrated: apply the migrations first (migrate up)")
	}
	return nil
}

// sweepTombstones deletes tombstones whose session would have expired by now.
func sweepTombstones(ctx context.Context, db *pgxpool.Pool, now time.Time) error {
	_, err := db.Exec(ctx, "DELETE FROM session_tombstones WHERE e <= $1", now.Unix())
	return err
}
