package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/migrations"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"
)

// serve runs the server until ctx is cancelled, then shuts down in order: drain (for
// ShutdownDrain /readyz answers 503 while every request is still served, so that load balancers
// stop sending any before the socket closes), stop accepting, let requests in flight finish (up
// to ShutdownTimeout), close the store, close the pool (each close bounded by closeTimeout, so a
// hung database cannot hold the process). It returns nil when every request in flight finished.
func serve(ctx context.Context, cfg Config, h Hooks, log *slog.Logger) error {
	db, err := connect(ctx, cfg, h, log)
	if err != nil {
		return err
	}
	defer within(closeTimeout, db.Close)
	if cfg.MigrateOnStart {
		if err := migrations.Up(db); err != nil {
			return fmt.Errorf("%w (set MIGRATE_ON_START=false to skip)", err)
		}
	}
	scfg := cfg.storeConfig(h.Now)
	scfg.Logger = log // the listener's changes of state
	store, err := storage.New(ctx, db, scfg)
	if errors.Is(err, storage.ErrNotHeard) {
		return listenerNotHeard(cfg, db)
	}
	if err != nil {
		return fmt.Errorf("start session store: %v", oneLine(err))
	}
	defer within(closeTimeout, func() { _ = store.Close() }) // runs before db.Close
	ids, err := loadSessionIDs(ctx, db, cfg.SessionKeys...)
	if err != nil {
		return fmt.Errorf("start sessions: %v", oneLine(err))
	}

	var obs observers // the zero observers: nobody is told what the server counts
	// optional: metrics begin
	obs, stopMetrics, err := startMetrics(cfg, store, db, h, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	// optional: metrics end

	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (HOST, PORT): %w", addr, err)
	}
	// fasthttp moves a connection's deadlines three times a request; recorded in memory instead
	// of on the socket, they cost almost nothing, and a read or write that outlasts its timeout
	// is cut at most one tick (250 ms) after it. Closing ln stops its reaper.
	ln := coarseDeadlines(tcp, deadlineTick)
	defer func() { _ = ln.Close() }() // also when Listener fails; a second Close does nothing
	// The runtime read GOMEMLIMIT from the process's environment already; this also applies
	// one from .env, or the default.
	debug.SetMemoryLimit(cfg.MemoryLimit)
	log.Info("memory limit", "GOMEMLIMIT", cfg.MemoryLimit)
	if lines := requestLines(log); lines != nil && cfg.LogFlushInterval > 0 {
		ticker := time.NewTicker(cfg.LogFlushInterval)
		stopBatch := lines.batch(ticker.C)
		defer func() { ticker.Stop(); stopBatch() }() // after the server has stopped: its last lines are written
	}
	drain := new(draining)
	srv := newServer(cfg, db, store, ids, obs, drain, h, log)
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		users.NewThrottle(db, cfg.Login, cfg.Store.QueryTimeout, h.Now).SweepEvery(sweepCtx, users.SweepInterval, log)
	}()
	defer func() { stopSweep(); <-swept }() // deferred after the store's Close, so it runs before it
	served := make(chan error, 1)
	go func() { served <- srv.Listener(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	if h.Ready != nil {
		h.Ready(ln.Addr().String(), store)
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	if cfg.ShutdownDrain > 0 {
		drain.Store(true)
		log.Info("draining: /readyz answers 503, requests are still served", "drain", cfg.ShutdownDrain)
		after := h.DrainAfter
		if after == nil {
			after = time.After
		}
		<-after(cfg.ShutdownDrain)
	}
	log.Info("shutting down: no new connections, finishing requests in flight", "timeout", cfg.ShutdownTimeout)
	shutErr := srv.ShutdownWithTimeout(cfg.ShutdownTimeout)
	// Fiber's shutdown does nothing if it wins the race with Listener's start; closing the
	// listener ourselves makes Listener return in every case.
	_ = ln.Close()
	<-served //nolint:errcheck // after a shutdown, Listener's error only says that it stopped
	if shutErr != nil {
		return fmt.Errorf("shutdown: requests still running after SHUTDOWN_TIMEOUT (%v): %w", cfg.ShutdownTimeout, shutErr)
	}
	return nil
}

// closeTimeout bounds the store's and the pool's Close at shutdown: a database that hangs must
// not keep the process from exiting (pgx waits up to 15 s for each hung connection).
const closeTimeout = 750 * time.Millisecond

// within runs f and waits for it at most d; a close still running then is left to the
// process's exit.
func within(d time.Duration, f func()) {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// Bounds of the retry while the database is unreachable at start-up.
const (
	pingTimeout = 2 * time.Second
	retryFirst  = 100 * time.Millisecond
	retryMax    = time.Second
)

// connect opens the pool and waits, up to ConnectTimeout, for the database to answer. When the
// server answers that the database does not exist, connect creates it (logging one line) and
// goes on: a fresh machine needs no set-up step. Any other refusal (wrong password, say) fails at
// once: waiting would not help.
func connect(ctx context.Context, cfg Config, h Hooks, log *slog.Logger) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a PostgreSQL URL: %v", oneLine(err))
	}
	if h.PoolConfig != nil {
		h.PoolConfig(pcfg)
	}
	where := net.JoinHostPort(pcfg.ConnConfig.Host, strconv.Itoa(int(pcfg.ConnConfig.Port)))
	db, err := pgxpool.NewWithConfig(ctx, pcfg) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %v", oneLine(err))
	}

	deadline := time.Now().Add(cfg.ConnectTimeout)
	wait := retryFirst
	created := false
	for {
		pctx, cancel := context.WithTimeout(ctx, min(pingTimeout, max(time.Until(deadline), time.Millisecond)))
		err = db.Ping(pctx)
		cancel()
		if err == nil {
			return db, nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InvalidCatalogName && !created {
			if err := createDatabase(ctx, pcfg.ConnConfig); err != nil {
				db.Close()
				return nil, fmt.Errorf("database %q does not exist on %s (DATABASE_URL) and creating it failed: %v; create it yourself (createdb %s) or name another in DATABASE_URL",
					pcfg.ConnConfig.Database, where, oneLine(err), pcfg.ConnConfig.Database)
			}
			created = true
			log.Info("created database", "database", pcfg.ConnConfig.Database, "server", where)
			continue
		}
		if errors.As(err, &pgErr) {
			db.Close()
			return nil, fmt.Errorf("PostgreSQL at %s (DATABASE_URL) refused the connection: %s (SQLSTATE %s); check the user, password and database name in DATABASE_URL",
				where, pgErr.Message, pgErr.Code)
		}
		if ctx.Err() != nil {
			db.Close()
			return nil, fmt.Errorf("interrupted while connecting to PostgreSQL at %s: %w", where, ctx.Err())
		}
		if time.Until(deadline) < wait {
			db.Close()
			return nil, fmt.Errorf("cannot reach PostgreSQL at %s (DATABASE_URL) within %v: %s; start one with 'go tool -modfile=tools/go.mod task db:up', or 'pg_ctlcluster 15 main start' on Debian, or set DATABASE_URL",
				where, cfg.ConnectTimeout, oneLine(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

// createDatabase creates the database that cc names, connecting for that to the server's
// maintenance database (postgres) as the same user.
func createDatabase(ctx context.Context, cc *pgx.ConnConfig) error {
	admin := cc.Copy()
	admin.Database = "postgres"
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cc.Database}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.DuplicateDatabase {
		return nil // another instance was quicker
	}
	return err
}
