// Package pgfault tells PostgreSQL faults (the database is unavailable, or a connection to it
// died) from every other error of pgx, and retries a statement that is safe to run twice once
// on a live connection when its pooled connection turned out to be dead.
//
// The server's error handler answers 503 with Retry-After exactly when Unavailable is true;
// reads use Retry so that a connection killed under the pool (pg_terminate_backend, a restart,
// a failover) costs the client nothing.
package pgfault

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// unavailableCodes are the SQLSTATEs that mean the database cannot serve now but may soon:
// https://www.postgresql.org/docs/15/errcodes-appendix.html.
var unavailableCodes = map[string]bool{
	"57P01": true, // admin_shutdown: pg_terminate_backend, or a fast or immediate shutdown
	"57P02": true, // crash_shutdown: another backend crashed and the server is restarting
	"57P03": true, // cannot_connect_now: starting up, shutting down, or a standby not accepting connections
	"57014": true, // query_canceled: statement_timeout, or cancelled by an operator
	"25006": true, // read_only_sql_transaction: a write reached a standby, as after a failover
	"53000": true, // insufficient_resources
	"53100": true, // disk_full
	"53200": true, // out_of_memory
	"53300": true, // too_many_connections
	"08000": true, // connection_exception
	"08003": true, // connection_does_not_exist
	"08006": true, // connection_failure
}

// lostCodes are the SQLSTATEs the server sends as it closes the connection: the statement will
// not run on it, and another connection may well work.
var lostCodes = map[string]bool{
	"57P01": true, // admin_shutdown
	"57P02": true, // crash_shutdown
	"08000": true,
	"08003": true,
	"08006": true,
}

// Unavailable reports whether err means that the database is unavailable or went away, rather
// than that the statement or the program is wrong: it could not be reached (any connect error),
// it did not answer in time (a deadline, a statement timeout), it closed the connection (server
// shutdown, crash, pg_terminate_backend, a reset or an EOF on the socket), or it refused for a
// passing reason (starting up, read-only after a failover, too many connections, out of
// resources). The caller answers such an error with 503 and Retry-After; the request may succeed
// if sent again later.
//
// Every connect error counts, a refusal for a wrong password or a missing database included:
// to the client the database is unavailable, and the log says why. A cancelled context
// (context.Canceled) is not unavailability: the caller gave up.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return unavailableCodes[pgErr.Code]
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	return ConnLost(err)
}

// ConnLost reports whether err means that the connection the statement was sent on was dead or
// died under it (the server terminated the backend, or the socket was reset or closed), so that
// the same statement may succeed on another connection at once. It is narrower than
// Unavailable: a connect error, a timeout or a refusal would only repeat on a new connection.
//
// A statement that failed with ConnLost may or may not have run: resend only statements that
// are safe to run twice (reads, and writes whose second run changes nothing).
func ConnLost(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return false // no connection to retry on; a new attempt now would fail alike
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return lostCodes[pgErr.Code]
	}
	if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE)
}

// Querier is what a statement needs: *pgxpool.Pool and *pgxpool.Conn both provide it.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Ping(ctx context.Context) error
}

var (
	_ Querier = (*pgxpool.Pool)(nil)
	_ Querier = (*pgxpool.Conn)(nil)
)

// Retry runs fn on pool and, if fn fails with ConnLost, runs it once more on a connection of
// pool that has just answered a ping, and returns that second result. fn must be safe to run
// twice: a read, or an idempotent write. ctx bounds both runs; fn should use the Querier it is
// given, not pool.
func Retry(ctx context.Context, pool *pgxpool.Pool, fn func(q Querier) error) error {
	err := fn(pool)
	if !ConnLost(err) {
		return err
	}
	conn, err := liveConn(ctx, pool)
	if err != nil {
		return err
	}
	defer conn.Release()
	return fn(conn)
}

// Ping is pool.Ping that does not take a dead pooled connection for a dead database: when the
// connection it pinged had been closed by the server, it pings once more on a live one.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	return Retry(ctx, pool, func(q Querier) error { return q.Ping(ctx) })
}

// liveConn acquires a connection of pool that answers a ping. The dead connections it meets
// are closed by pgx and dropped by the pool on release, so after at most MaxConns of them the
// pool opens a new one.
func liveConn(ctx context.Context, pool *pgxpool.Pool) (*pgxpool.Conn, error) {
	var err error
	for range pool.Config().MaxConns + 1 {
		var conn *pgxpool.Conn
		if conn, err = pool.Acquire(ctx); err != nil {
			return nil, err
		}
		if err = conn.Ping(ctx); err == nil {
			return conn, nil
		}
		conn.Release()
		if !ConnLost(err) {
			return nil, err
		}
	}
	return nil, err
}
