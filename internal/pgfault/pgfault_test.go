package pgfault_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgfault"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// The errors below are real: each is provoked against a PostgreSQL server of the test's own.
// Every one is also checked wrapped, as the callers see it ("storage: get: %w").
func TestClassify(t *testing.T) {
	c := pgtest.NewCluster(t)
	url := c.CreateDatabase("faults")
	ctx := context.Background()

	type tc struct {
		name        string
		err         error
		unavailable bool
		connLost    bool
	}
	var cases []tc
	add := func(name string, err error, unavailable, connLost bool) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: provoking the error gave none", name)
		}
		t.Logf("%s: %v", name, err)
		cases = append(cases, tc{name, err, unavailable, connLost})
	}

	// A pooled connection whose backend was terminated while idle: the next statement on it
	// reads the FATAL message the server left.
	pool := newPool(t, url, 1)
	pgtest.Exec(t, pool, "SELECT 1")
	terminate(t, c, "faults")
	_, err := pool.Exec(ctx, "SELECT 1")
	add("idle connection terminated (57P01)", err, true, true)

	// A connection terminated in the middle of a statement.
	conn := connect(t, url)
	errc := make(chan error, 1)
	go func() { _, err := conn.Exec(ctx, "SELECT pg_sleep(30)"); errc <- err }()
	waitActive(t, c, url, "SELECT pg_sleep(30)")
	terminate(t, c, "faults")
	add("statement in flight terminated (57P01)", <-errc, true, true)

	// A backend killed with SIGKILL: its own client sees the socket close, and every other
	// backend is ended while the server resets itself. Since PostgreSQL 14 they send 57P02 as a
	// warning, not an error, before they exit: the client sees the socket close.
	victim, idle, busy := connect(t, url), connect(t, url), connect(t, url)
	go func() { _, err := busy.Exec(ctx, "SELECT pg_sleep(31)"); errc <- err }()
	waitActive(t, c, url, "SELECT pg_sleep(31)")
	if err := syscall.Kill(int(victim.PgConn().PID()), syscall.SIGKILL); err != nil {
		t.Fatalf("kill backend %d: %v", victim.PgConn().PID(), err)
	}
	add("statement in flight when another backend crashed (EOF)", <-errc, true, true)
	_, err = victim.Exec(ctx, "SELECT 1")
	add("own backend killed (socket closed)", err, true, true)
	_, err = idle.Exec(ctx, "SELECT 1")
	add("idle when another backend crashed (socket closed)", err, true, true)
	waitUp(t, url)

	// Refusals that a new connection would only repeat. The role is made only now: the cluster
	// runs with synchronous_commit off, so the crash above may lose a commit made before it.
	c.Exec("CREATE ROLE limited LOGIN CONNECTION LIMIT 1")
	held, err := pgx.Connect(ctx, c.URL("faults")+"&user=limited")
	if err != nil {
		t.Fatalf("connect as limited: %v", err)
	}
	_, err = pgx.Connect(ctx, c.URL("faults")+"&user=limited")
	add("too many connections (53300)", err, true, false)
	_ = held.Close(ctx)

	conn = connect(t, url)
	_, err = conn.Exec(ctx, "SET statement_timeout = 50")
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT pg_sleep(5)")
	add("statement timeout (57014)", err, true, false)

	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = connect(t, url).Exec(dctx, "SELECT pg_sleep(5)")
	cancel()
	add("deadline of the caller", err, true, false)

	// Not faults of the database: the program's, or the caller's.
	conn = connect(t, url)
	_, err = conn.Exec(ctx, "SELEC 1")
	add("syntax error (42601)", err, false, false)
	_, err = conn.Exec(ctx, "SELECT 1/0")
	add("division by zero (22012)", err, false, false)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO t VALUES (1), (1)")
	add("unique violation (23505)", err, false, false)
	err = conn.QueryRow(ctx, "SELECT 1 WHERE false").Scan(new(int))
	add("no rows", err, false, false)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = conn.Exec(cctx, "SELECT 1")
	add("context cancelled by the caller", err, false, false)
	_, err = pgx.Connect(ctx, c.URL("no_such_database"))
	add("no such database (3D000): a connect error", err, true, false)

	// A failover's leftovers: a standby that accepts reads, then one that accepts nothing.
	c.Stop()
	c.StartStandby(true)
	conn = connect(t, url)
	_, err = conn.Exec(ctx, "INSERT INTO t VALUES (2)")
	add("write on a standby (25006)", err, true, false)
	c.Stop()
	c.StartStandby(false)
	_, err = pgx.Connect(ctx, url)
	add("standby refusing connections (57P03)", err, true, false)
	c.Promote()

	// A stopped server: pooled connections are ended by the shutdown, new ones refused.
	pool = newPool(t, url, 1)
	pgtest.Exec(t, pool, "SELECT 1")
	c.Stop()
	_, err = pool.Exec(ctx, "SELECT 1")
	add("idle connection ended by a fast shutdown (57P01)", err, true, true)
	_, err = pool.Exec(ctx, "SELECT 1")
	add("server down (connection refused)", err, true, false)
	c.Start()

	cases = append(cases,
		tc{"nil", nil, false, false},
		tc{"plain error", errors.New("boom"), false, false},
		tc{"reset by peer", fmt.Errorf("read: %w", syscall.ECONNRESET), true, true},
		// What servers before 14 send on a crash; 15 sends it as a warning (above).
		tc{"crash shutdown (57P02)", &pgconn.PgError{Severity: "FATAL", Code: "57P02"}, true, true},
	)
	for _, tc := range cases {
		for _, wrapped := range []bool{false, true} {
			err, name := tc.err, tc.name
			if wrapped && err != nil {
				err, name = fmt.Errorf("storage: get: %w", err), name+" wrapped"
			}
			t.Run(name, func(t *testing.T) {
				if got := pgfault.Unavailable(err); got != tc.unavailable {
					t.Errorf("Unavailable(%v): got %v, want %v", err, got, tc.unavailable)
				}
				if got := pgfault.ConnLost(err); got != tc.connLost {
					t.Errorf("ConnLost(%v): got %v, want %v", err, got, tc.connLost)
				}
			})
		}
	}
}

// Retry runs a read once more, on a live connection, when its pooled connection was dead, and
// only then.
func TestRetry(t *testing.T) {
	c := pgtest.NewCluster(t)
	url := c.CreateDatabase("retry")
	ctx := context.Background()
	const conns = 4
	pool := newPool(t, url, conns)
	fillPool(t, pool, conns)

	read := func(runs *atomic.Int32) func(q pgfault.Querier) error {
		return func(q pgfault.Querier) error {
			runs.Add(1)
			var n int
			return q.QueryRow(ctx, "SELECT 1").Scan(&n)
		}
	}

	t.Run("every pooled connection terminated", func(t *testing.T) {
		terminate(t, c, "retry")
		var runs atomic.Int32
		if err := pgfault.Retry(ctx, pool, read(&runs)); err != nil {
			t.Fatalf("Retry: got %v, want nil", err)
		}
		if got := runs.Load(); got != 2 {
			t.Errorf("runs: got %d, want 2", got)
		}
	})

	t.Run("healthy pool", func(t *testing.T) {
		var runs atomic.Int32
		if err := pgfault.Retry(ctx, pool, read(&runs)); err != nil {
			t.Fatalf("Retry: got %v, want nil", err)
		}
		if got := runs.Load(); got != 1 {
			t.Errorf("runs: got %d, want 1", got)
		}
	})

	t.Run("an error of the statement is not retried", func(t *testing.T) {
		var runs atomic.Int32
		err := pgfault.Retry(ctx, pool, func(q pgfault.Querier) error {
			runs.Add(1)
			_, err := q.Exec(ctx, "SELEC 1")
			return err
		})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42601" {
			t.Fatalf("Retry: got %v, want the syntax error", err)
		}
		if got := runs.Load(); got != 1 {
			t.Errorf("runs: got %d, want 1", got)
		}
	})

	t.Run("ping after a terminate", func(t *testing.T) {
		fillPool(t, pool, conns)
		terminate(t, c, "retry")
		if err := pgfault.Ping(ctx, pool); err != nil {
			t.Fatalf("Ping: got %v, want nil: the database is up", err)
		}
	})

	t.Run("database down", func(t *testing.T) {
		fillPool(t, pool, conns)
		c.Stop()
		defer c.Start()
		var runs atomic.Int32
		err := pgfault.Retry(ctx, pool, read(&runs))
		if !pgfault.Unavailable(err) {
			t.Fatalf("Retry: got %v, want an error that Unavailable accepts", err)
		}
		if got := runs.Load(); got != 1 {
			t.Errorf("runs: got %d, want 1 (no live connection to run it again on)", got)
		}
		if err := pgfault.Ping(ctx, pool); !pgfault.Unavailable(err) {
			t.Errorf("Ping: got %v, want an error that Unavailable accepts", err)
		}
	})
}

// newPool opens a pool of at most conns connections that never pings a connection before
// handing it out, as a busy pool does not (pgxpool pings only those idle for over a second):
// a dead connection is found by the statement sent on it.
func newPool(t *testing.T, url string, conns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = conns
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// fillPool makes pool hold n open connections.
func fillPool(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	var held []*pgxpool.Conn
	for range n {
		conn, err := pool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	for _, conn := range held {
		conn.Release()
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// terminate ends every connection to db and waits until their backends are gone, so that
// the FATAL message of each is waiting on its socket.
func terminate(t *testing.T, c *pgtest.Cluster, db string) {
	t.Helper()
	c.Terminate(db)
	admin := connect(t, c.URL("postgres"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := admin.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends of %s still there 10s after pg_terminate_backend", n, db)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitActive waits until a backend of the cluster runs query.
func waitActive(t *testing.T, c *pgtest.Cluster, url, query string) {
	t.Helper()
	admin := connect(t, c.URL("postgres"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := admin.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'", query).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not running after 10s", query)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitUp waits until the server accepts connections again, as after a crash.
func waitUp(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), url)
		if err == nil {
			_ = conn.Close(context.Background())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not back 30s after a crash: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
