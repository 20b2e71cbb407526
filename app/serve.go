package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/migrations"
	"github.com/gofiber-template/sessions/storage"
)

// serve runs the server until ctx is cancelled, then shuts down in order: stop accepting, let
// requests in flight finish (up to ShutdownTimeout), close the store, close the pool (each close
// bounded by closeTimeout, so a hung database cannot hold the process).
func serve(ctx context.Context, cfg Config, h Hooks, log *slog.Logger) error {
	db, err := connect(ctx, cfg, h)
	if err != nil {
		return err
	}
	defer within(closeTimeout, db.Close)
	if cfg.MigrateOnStart {
		if err := migrations.Up(db); err != nil {
			return fmt.Errorf("%w (set MIGRATE_ON_START=false to skip)", err)
		}
	}
	var store *storage.Store
	if h.InMemoryStore {
		store, err = storage.NewInMemory(cfg.storeConfig(h.Now))
	} else {
		store, err = storage.New(ctx, db, cfg.storeConfig(h.Now))
	}
	if err != nil {
		return fmt.Errorf("start session store: %v", oneLine(err))
	}
	defer within(closeTimeout, func() { _ = store.Close() }) // runs before db.Close

	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (HOST, PORT): %v", addr, err)
	}
	srv := newServer(cfg, db, store, h, log)
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
	log.Info("shutting down")
	shutErr := srv.ShutdownWithTimeout(cfg.ShutdownTimeout)
	// Fiber's shutdown does nothing if it wins the race with Listener's start; closing the
	// listener ourselves makes Listener return in every case.
	_ = ln.Close()
	<-served
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
	retryMin    = 100 * time.Millisecond
	retryMax    = time.Second
)

// connect opens the pool and waits, up to ConnectTimeout, for the database to answer. A server
// that answers with an error (wrong password, no such database) fails at once: waiting would not
// help.
func connect(ctx context.Context, cfg Config, h Hooks) (*pgxpool.Pool, error) {
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
	wait := retryMin
	for {
		pctx, cancel := context.WithTimeout(ctx, min(pingTimeout, max(time.Until(deadline), time.Millisecond)))
		err = db.Ping(pctx)
		cancel()
		if err == nil {
			return db, nil
		}
		var pgErr *pgconn.PgError
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
			return nil, fmt.Errorf("cannot reach PostgreSQL at %s (DATABASE_URL) within %v (DB_CONNECT_TIMEOUT): %s; start one with 'go tool task db:up', or 'pg_ctlcluster 15 main start' on Debian, or set DATABASE_URL",
				where, cfg.ConnectTimeout, oneLine(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}
