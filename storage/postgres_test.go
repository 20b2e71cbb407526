package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgtest"

	"github.com/gofiber-template/sessions/internal/testclock"
)

// newPGStore starts a Store on pool with a test-sized configuration, closed when the test ends.
func newPGStore(t testing.TB, pool *pgxpool.Pool, tune func(*Config)) *Store {
	t.Helper()
	cfg := DefaultConfig()
	// Tests not about the lease must not depend on how fast a ping returns on a loaded machine.
	cfg.Lease = time.Minute
	cfg.ReconnectMin = 20 * time.Millisecond
	cfg.ReconnectMax = 200 * time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	s, err := New(context.Background(), pool, cfg)
	if err != nil {
		t.Fatalf("storage.New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// eventually polls cond every millisecond until it holds or limit passes, and returns how long
// it took.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: still not true after %v", what, limit)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// notified returns a channel closed once s has applied a notification about key.
func notified(s *Store, key string) <-chan struct{} {
	ch := make(chan struct{})
	var once sync.Once
	h := hashKey(key)
	s.setHook(func(point, k string) {
		if point == "notified" && k == h {
			once.Do(func() { close(ch) })
		}
	})
	return ch
}

// openTx begins a transaction on pool, runs sql in it and leaves it open, holding its locks,
// until the caller commits it or the test ends (rollback).
func openTx(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return tx
}

func TestPostgresRoundTripStoresOnlyHashedKeys(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	s := newPGStore(t, pool, nil)
	const cookie = "8d0c1a52-3b9e-4d7a-9a51-6c2f0e6b7f10"
	mustSet(t, s, cookie, "data", time.Hour)
	wantValue(t, mustGet(t, s, cookie), "data")

	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions WHERE k = $1", cookie); n != 0 {
		t.Fatal("the cookie value is stored in clear")
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions WHERE k = $1", hashKey(cookie)); n != 1 {
		t.Fatalf("got %d rows under the hashed key, want 1", n)
	}
	e := pgtest.Count(t, pool, "SELECT e FROM sessions WHERE k = $1", hashKey(cookie))
	if want := time.Now().Add(time.Hour).Unix(); e < want-5 || e > want {
		t.Fatalf("got expiry %d, want about %d", e, want)
	}

	// A second store (another instance, or this one after a restart) reads it from Postgres.
	s2 := newPGStore(t, pool, nil)
	wantValue(t, mustGet(t, s2, cookie), "data")

	if err := s.Delete(cookie); err != nil {
		t.Fatal(err)
	}
	wantValue(t, mustGet(t, s, cookie), "")
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions"); n != 0 {
		t.Fatalf("got %d rows after Delete, want 0", n)
	}
}

func TestPostgresHitSendsNoStatementAndMissSendsOne(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	var c pgtest.Counter
	pool := pgtest.PoolWithCounter(t, dbURL, &c)
	s := newPGStore(t, pool, nil)
	mustSet(t, s, "a", "1", time.Hour)

	before, _ := c.Count("")
	for range 100 {
		wantValue(t, mustGet(t, s, "a"), "1")
	}
	if after, _ := c.Count(""); after != before {
		t.Fatalf("100 hits sent %d statements, want 0: %q", after-before, c.Statements()[before:])
	}

	// A cold key read by another instance: one SELECT, then hits.
	s2 := newPGStore(t, pool, nil)
	_, selects := c.Count("SELECT v, e")
	for range 10 {
		wantValue(t, mustGet(t, s2, "a"), "1")
	}
	if _, after := c.Count("SELECT v, e"); after-selects != 1 {
		t.Fatalf("got %d reads for 10 Gets of a cold key, want 1", after-selects)
	}
}

// Cached never sends a statement: not for a key memory lacks (only the row in Postgres has it),
// nor for one it serves.
func TestPostgresCachedSendsNoStatement(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	var c pgtest.Counter
	pool := pgtest.PoolWithCounter(t, dbURL, &c)
	decode := func(c *Config) { c.Decode = func(v []byte) (any, error) { return string(v), nil } }
	a, b := newPGStore(t, pool, decode), newPGStore(t, pool, decode)
	mustSet(t, a, "s", "v", time.Hour) // B has only the row

	mark := c.Mark()
	if d, _, ok := b.Cached("s"); ok || d != nil {
		t.Fatalf("Cached of a key only in Postgres: %v, %v; want nil, false", d, ok)
	}
	if n, sqls := c.Since(mark); n != 0 {
		t.Fatalf("Cached of a key only in Postgres sent %d statements, want 0: %q", n, sqls)
	}
	if d, _, err := b.GetDecoded(context.Background(), "s"); err != nil || d != "v" {
		t.Fatalf("GetDecoded: %v, %v", d, err)
	}
	mark = c.Mark()
	for range 10 {
		if d, _, ok := b.Cached("s"); !ok || d != "v" {
			t.Fatalf("Cached of a warm key: %v, %v; want v, true", d, ok)
		}
	}
	if n, sqls := c.Since(mark); n != 0 {
		t.Fatalf("10 Cached hits sent %d statements, want 0: %q", n, sqls)
	}
}

func TestPostgresStampedeOnColdKeyIsOneQuery(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	var c pgtest.Counter
	pool := pgtest.PoolWithCounter(t, dbURL, &c)
	writer := newPGStore(t, pool, nil)
	mustSet(t, writer, "cold", "v", time.Hour)

	s := newPGStore(t, pool, nil)
	const n = 100
	release := make(chan struct{})
	s.setHook(func(point, _ string) {
		if point == "load:before" {
			<-release
		}
	})
	_, before := c.Count("SELECT v, e")
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			v, err := s.Get("cold")
			if err != nil || string(v) != "v" {
				t.Errorf("got %q, %v; want \"v\"", v, err)
			}
		})
	}
	eventually(t, 10*time.Second, "all goroutines missed", func() bool { return s.Stats().Misses == n })
	close(release)
	wg.Wait()
	if _, after := c.Count("SELECT v, e"); after-before != 1 {
		t.Fatalf("got %d queries for %d concurrent misses on one cold key, want 1", after-before, n)
	}
}

func TestPostgresLateWriteAfterDeleteIsRefused(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	a := newPGStore(t, pool, nil)
	b := newPGStore(t, pool, nil)
	mustSet(t, a, "s", "logged in", time.Hour)
	loaded := mustGet(t, b, "s")          // a request on B loads the session
	if err := a.Delete("s"); err != nil { // the user logs out on A
		t.Fatal(err)
	}
	if err := b.Set("s", loaded, time.Hour); !errors.Is(err, ErrDeleted) { // B saves it late
		t.Fatalf("got %v, want ErrDeleted", err)
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions"); n != 0 {
		t.Fatal("a late write re-created a deleted session")
	}
	wantValue(t, mustGet(t, b, "s"), "")
	wantValue(t, mustGet(t, a, "s"), "")
}

func TestPostgresWriteRacingUncommittedDeleteIsRefused(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	s := newPGStore(t, pool, nil)
	mustSet(t, s, "s", "v1", time.Hour)

	// A logout on another instance has deleted the row but not committed yet.
	tx := openTx(t, pool, "DELETE FROM sessions WHERE k = $1", hashKey("s"))
	done := make(chan error, 1)
	go func() { done <- s.Set("s", []byte("v2"), time.Hour) }()
	// The Set's trigger waits for the delete's row lock.
	eventually(t, 10*time.Second, "the write waits on the delete's lock", func() bool {
		return pgtest.Count(t, pool, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") > 0
	})
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrDeleted) {
		t.Fatalf("got %v, want ErrDeleted", err)
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions"); n != 0 {
		t.Fatal("the write that raced the delete re-created the session")
	}
}

func TestPostgresHungDatabaseHitsDeadline(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	s := newPGStore(t, pool, func(c *Config) { c.QueryTimeout = 300 * time.Millisecond })
	mustSet(t, s, "warm", "1", time.Hour)

	openTx(t, pool, "LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE") // held until the test ends
	if _, err := s.Get("cold"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get: got %v, want a deadline error", err)
	}
	if err := s.Set("x", []byte("1"), time.Hour); err == nil {
		t.Fatal("Set on a locked table succeeded")
	}
	if err := s.Delete("x"); err == nil {
		t.Fatal("Delete on a locked table succeeded")
	}
	// A warm session is still served from memory.
	wantValue(t, mustGet(t, s, "warm"), "1")
}

func TestPostgresTwoStoresStayCoherent(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	a := newPGStore(t, pool, nil)
	b := newPGStore(t, pool, nil)

	mustSet(t, a, "s", "v1", time.Hour)
	wantValue(t, mustGet(t, b, "s"), "v1") // B fills its memory
	if !inMemory(b, "s") {
		t.Fatal("B did not keep the session in memory")
	}

	t.Run("delete on A", func(t *testing.T) {
		if err := a.Delete("s"); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, time.Second, "B stops serving the deleted session", func() bool { return !inMemory(b, "s") })
		t.Logf("delete on A to eviction on B: %v", took)
		wantValue(t, mustGet(t, b, "s"), "")
	})

	t.Run("update on A", func(t *testing.T) {
		// A's notification of its first write could arrive while its second is in flight and,
		// being about an older value, stop the second write's fill (safe, but not what this
		// subtest checks): wait for it first.
		heard := notified(a, "u")
		mustSet(t, a, "u", "v1", time.Hour)
		<-heard
		wantValue(t, mustGet(t, b, "u"), "v1")
		mustSet(t, a, "u", "v2", time.Hour)
		eventually(t, time.Second, "B drops the old value", func() bool { return !inMemory(b, "u") })
		wantValue(t, mustGet(t, b, "u"), "v2")
		if !inMemory(a, "u") {
			t.Fatal("A's own write evicted A's fresh entry")
		}
	})

	t.Run("plain SQL", func(t *testing.T) {
		mustSet(t, a, "p", "v", time.Hour)
		wantValue(t, mustGet(t, b, "p"), "v")
		pgtest.Exec(t, pool, "DELETE FROM sessions WHERE k = $1", hashKey("p"))
		eventually(t, time.Second, "both drop a row deleted in psql", func() bool { return !inMemory(a, "p") && !inMemory(b, "p") })
		wantValue(t, mustGet(t, a, "p"), "")
		wantValue(t, mustGet(t, b, "p"), "")
	})

	t.Run("expiry shortened in SQL", func(t *testing.T) {
		mustSet(t, a, "x", "v", time.Hour)
		wantValue(t, mustGet(t, b, "x"), "v")
		pgtest.Exec(t, pool, "UPDATE sessions SET e = $2 WHERE k = $1", hashKey("x"), time.Now().Add(time.Minute).Unix())
		eventually(t, time.Second, "both drop a copy that would outlive its row", func() bool { return !inMemory(a, "x") && !inMemory(b, "x") })
	})

	t.Run("reset on A", func(t *testing.T) {
		mustSet(t, a, "r", "v", time.Hour)
		wantValue(t, mustGet(t, b, "r"), "v")
		if err := a.Reset(); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Second, "B flushes after a reset", func() bool { return b.Stats().Entries == 0 })
		if err := b.Set("r", []byte("late"), time.Hour); !errors.Is(err, ErrDeleted) {
			t.Fatalf("late write after Reset: got %v, want ErrDeleted", err)
		}
	})

	t.Run("delete owner", func(t *testing.T) {
		for _, k := range []string{"o1", "o2"} {
			mustSet(t, a, k, "v", time.Hour)
			// Filed by hand, as an operator could (Set writes owners: TestPostgresOwnedAndDeleteHandle).
			pgtest.Exec(t, pool, "UPDATE sessions SET owner = 'user-7' WHERE k = $1", hashKey(k))
			wantValue(t, mustGet(t, b, k), "v")
		}
		n, err := DeleteOwner(context.Background(), pool, "user-7") // as the CLI does
		if err != nil || n != 2 {
			t.Fatalf("got %d, %v; want 2 sessions deleted", n, err)
		}
		eventually(t, time.Second, "both drop the owner's sessions", func() bool {
			return !inMemory(a, "o1") && !inMemory(a, "o2") && !inMemory(b, "o1") && !inMemory(b, "o2")
		})
		if err := a.Set("o1", []byte("late"), time.Hour); !errors.Is(err, ErrDeleted) {
			t.Fatalf("late write after DeleteOwner: got %v, want ErrDeleted", err)
		}
	})
}

func TestPostgresListenerKilledFlushesAndRecovers(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	a := newPGStore(t, pool, nil)
	b := newPGStore(t, pool, nil)
	mustSet(t, a, "s", "v", time.Hour)
	wantValue(t, mustGet(t, b, "s"), "v")

	// Kill every listener on this database; B must notice, flush, and listen again.
	pgtest.Exec(t, pool, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1", ListenerApplicationName)
	eventually(t, 5*time.Second, "B flushes and reconnects", func() bool {
		st := b.Stats()
		return st.Flushes >= 1 && st.Reconnects >= 1 && st.Listening
	})
	if inMemory(b, "s") {
		t.Fatal("B kept its memory tier across a listener loss")
	}
	// Coherence is restored: B caches again, and a delete on A reaches it.
	wantValue(t, mustGet(t, b, "s"), "v")
	eventually(t, 5*time.Second, "A listens again", func() bool { return a.Stats().Listening })
	if !inMemory(b, "s") {
		t.Fatal("B does not cache after reconnecting")
	}
	if err := a.Delete("s"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "B drops the session deleted on A", func() bool { return !inMemory(b, "s") })
}

func TestPostgresUnreachableDatabaseIsAnError(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	cfg := DefaultConfig()
	cfg.QueryTimeout = 2 * time.Second
	s, err := New(context.Background(), pool, cfg)
	if err == nil {
		s.Close()
		t.Fatal("New succeeded with an unreachable database")
	}
}

func TestPostgresMissingMigrationsIsAnError(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	pgtest.Exec(t, pool, "DROP TABLE sessions")
	if s, err := New(context.Background(), pool, DefaultConfig()); err == nil {
		s.Close()
		t.Fatal("New succeeded without the sessions table")
	}
	if err := pool.Ping(context.Background()); err != nil {
		t.Fatalf("a failed New closed the caller's pool: %v", err)
	}
}

func TestPostgresMissingColumnsIsAnError(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	pgtest.Exec(t, pool, "ALTER TABLE sessions DROP COLUMN handle")
	if s, err := New(context.Background(), pool, DefaultConfig()); err == nil {
		s.Close()
		t.Fatal("New succeeded without the handle column")
	}
}

// ownedValues files a value "owner key ..." under its first word (Config.Owner).
func ownedValues(c *Config) {
	c.Decode = func(val []byte) (any, error) { return string(val), nil }
	c.Owner = func(d any) string {
		owner, _, _ := strings.Cut(d.(string), " ")
		return owner
	}
}

// TestPostgresOwnedAndDeleteHandle files rows under their owners as Set writes them, lists the
// rows of one owner and deletes one by its handle, with the statements each costs, and another
// instance hearing of it.
func TestPostgresOwnedAndDeleteHandle(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewPool(t)
	var st pgtest.Counter
	tune := func(c *Config) {
		c.SweepInterval = time.Hour // the expired row below stays
		ownedValues(c)
	}
	a := newPGStore(t, pgtest.PoolWithCounter(t, dbURL, &st), tune)
	b := newPGStore(t, pool, tune)
	ctx := context.Background()
	for _, k := range []string{"o1", "o2", "o3", "x1"} {
		owner := "user-7"
		if k == "x1" {
			owner = "user-8"
		}
		mark := st.Mark()
		mustSet(t, a, k, owner+" "+k, time.Hour)
		if n, sqls := st.Since(mark); n != 1 {
			t.Errorf("Set with an owner sent %d statements, want 1: %q", n, sqls)
		}
	}
	mustSet(t, a, "o1", "user-7 o1 again", time.Hour) // a rewrite keeps the handle
	mustSet(t, a, "unbound", "", time.Hour)           // ignored, as Fiber's empty values are
	mustSet(t, a, "nobody", " nobody", time.Hour)     // owner "": filed under none
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions WHERE owner IS NULL"); n != 1 {
		t.Errorf("got %d rows without an owner, want 1", n)
	}
	pgtest.Exec(t, pool, "INSERT INTO sessions (k, v, e, owner) VALUES ('expired', '\\x01', $1, 'user-7')",
		time.Now().Add(-time.Minute).Unix())

	mark := st.Mark()
	got, err := a.Owned(ctx, "user-7", "o2")
	if n, sqls := st.Since(mark); n != 1 {
		t.Errorf("Owned sent %d statements, want 1: %q", n, sqls)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Owned: got %d rows, want the 3 live ones of user-7", len(got))
	}
	handles := map[string]string{} // key -> handle
	for _, r := range got {
		f := strings.Fields(string(r.Value))
		if len(f) < 2 || f[0] != "user-7" {
			t.Fatalf("Owned(user-7) returned the value %q", r.Value)
		}
		k := f[1]
		if want := "user-7 " + k; k != "o1" && string(r.Value) != want {
			t.Errorf("value of %s: got %q, want %q", k, r.Value, want)
		}
		if until := time.Until(r.Expires); until < 58*time.Minute || until > time.Hour {
			t.Errorf("expiry of %s: got %v from now, want about an hour", k, until)
		}
		if r.Current != (k == "o2") {
			t.Errorf("current of %s: got %v, want %v", k, r.Current, k == "o2")
		}
		if r.Handle == "" || r.Handle == k || r.Handle == hashKey(k) {
			t.Errorf("handle of %s: got %q, want a random one", k, r.Handle)
		}
		handles[k] = r.Handle
	}
	if len(handles) != 3 || handles["o1"] == handles["o2"] || handles["o2"] == handles["o3"] || handles["o1"] == handles["o3"] {
		t.Fatalf("got handles %v, want three distinct ones for o1, o2, o3", handles)
	}

	// Nobody else's, nor an unknown one, is deleted.
	for _, c := range []struct{ owner, handle string }{
		{"user-8", handles["o1"]}, {"user-7", "nope"}, {"user-7", ""},
	} {
		if deleted, _, err := a.DeleteHandle(ctx, c.owner, c.handle, "x1"); err != nil || deleted {
			t.Errorf("DeleteHandle(%q, %q): got %v, %v; want nothing deleted", c.owner, c.handle, deleted, err)
		}
	}
	var expiredHandle string
	if err := pool.QueryRow(ctx, "SELECT handle FROM sessions WHERE k = 'expired'").Scan(&expiredHandle); err != nil {
		t.Fatal(err)
	}
	if deleted, _, err := a.DeleteHandle(ctx, "user-7", expiredHandle, "o2"); err != nil || deleted {
		t.Errorf("DeleteHandle of an expired row: got %v, %v; want nothing deleted", deleted, err)
	}

	wantValue(t, mustGet(t, b, "o1"), "user-7 o1 again") // in B's memory
	mark = st.Mark()
	deleted, wasKey, err := a.DeleteHandle(ctx, "user-7", handles["o1"], "o2")
	if n, sqls := st.Since(mark); n != 1 {
		t.Errorf("DeleteHandle sent %d statements, want 1: %q", n, sqls)
	}
	if err != nil || !deleted || wasKey {
		t.Fatalf("DeleteHandle of o1 by o2: got %v, %v, %v; want deleted, not the caller's own", deleted, wasKey, err)
	}
	wantValue(t, mustGet(t, a, "o1"), "")
	eventually(t, time.Second, "B drops o1", func() bool { return !inMemory(b, "o1") })
	if err := b.Set("o1", []byte("late"), time.Hour); !errors.Is(err, ErrDeleted) {
		t.Fatalf("late write after DeleteHandle: got %v, want ErrDeleted", err)
	}
	if deleted, wasKey, err := a.DeleteHandle(ctx, "user-7", handles["o2"], "o2"); err != nil || !deleted || !wasKey {
		t.Fatalf("DeleteHandle of o2 by o2: got %v, %v, %v; want deleted, the caller's own", deleted, wasKey, err)
	}
	if got, err := a.Owned(ctx, "user-7", "o2"); err != nil || len(got) != 1 || got[0].Handle != handles["o3"] {
		t.Fatalf("Owned after two deletes: got %+v, %v; want o3 alone", got, err)
	}
}

func TestPostgresCloseLeavesPoolOpen(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	s, err := New(context.Background(), pool, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "a", "1", time.Hour)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(context.Background()); err != nil {
		t.Fatalf("Close closed the caller's pool: %v", err)
	}
	eventually(t, 5*time.Second, "the listener's connection is gone after Close", func() bool {
		return pgtest.Count(t, pool, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1", ListenerApplicationName) == 0
	})
}

func TestPostgresSweepRemovesExpiredTombstones(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	pgtest.Exec(t, pool, "INSERT INTO session_tombstones (k, e) VALUES ('old', 1), ('live', $1)", time.Now().Add(time.Hour).Unix())
	if err := newPGTier(pool, true).sweep(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM session_tombstones"); n != 1 {
		t.Fatalf("got %d tombstones, want 1", n)
	}
}

func TestPostgresExpiredRowsAreSwept(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	// A sub-second interval is honoured (postgres/v3 turned it into 10 s).
	newPGStore(t, pool, func(c *Config) { c.SweepInterval = 100 * time.Millisecond })
	past := time.Now().Add(-time.Minute).Unix()
	pgtest.Exec(t, pool, "INSERT INTO sessions (k, v, e) VALUES ('expired', '\\x01', $1), ('live', '\\x01', $2), ('forever', '\\x01', 0)",
		past, time.Now().Add(time.Hour).Unix())
	eventually(t, 3*time.Second, "the sweep deletes the expired row", func() bool {
		return pgtest.Count(t, pool, "SELECT count(*) FROM sessions WHERE k = 'expired'") == 0
	})
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions"); n != 2 {
		t.Fatalf("got %d rows after the clean-up, want the 2 unexpired ones", n)
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM session_tombstones"); n != 0 {
		t.Fatalf("the clean-up left %d tombstones, want 0: expired rows need none", n)
	}
}

func TestPostgresTombstoneCheckedAfterInsertToo(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	s := newPGStore(t, pool, nil)
	// Stand for the window the BEFORE trigger cannot close when no row exists yet: another
	// transaction creates and deletes the key after that check ran. The AFTER trigger alone must
	// refuse the write.
	pgtest.Exec(t, pool, "ALTER TABLE sessions DISABLE TRIGGER sessions_refuse_deleted")
	pgtest.Exec(t, pool, "INSERT INTO session_tombstones (k, e) VALUES ($1, $2)", hashKey("s"), time.Now().Add(time.Hour).Unix())
	if err := s.Set("s", []byte("late"), time.Hour); !errors.Is(err, ErrDeleted) {
		t.Fatalf("got %v, want ErrDeleted", err)
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions"); n != 0 {
		t.Fatal("the refused write left a row")
	}
}

func TestPostgresHungListenerStopsServingWithinLease(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	pool := pgtest.Pool(t, dbURL)
	proxy := pgtest.NewProxy(t, dbURL)
	defaults := DefaultConfig()
	a := newPGStore(t, pool, nil)
	// B listens through a network that will hang; its pool reaches Postgres directly.
	b := newPGStore(t, pool, func(c *Config) {
		c.Lease, c.HealthInterval = defaults.Lease, defaults.HealthInterval
		c.ListenURL = proxy.URL(dbURL)
	})
	mustSet(t, a, "s", "v", time.Hour)
	wantValue(t, mustGet(t, b, "s"), "v")
	if !inMemory(b, "s") {
		t.Fatal("B did not keep the session in memory")
	}

	// The cost of the lease: pings while nothing happens.
	p0, start := b.Stats().Pings, time.Now()
	time.Sleep(3 * time.Second)
	t.Logf("pings per second, idle instance: %.1f", float64(b.Stats().Pings-p0)/time.Since(start).Seconds())
	wantValue(t, mustGet(t, b, "s"), "v")

	proxy.Hang()
	if err := a.Delete("s"); err != nil { // a logout on A
		t.Fatal(err)
	}
	deleted := time.Now()
	for string(mustGet(t, b, "s")) == "v" {
		if time.Since(deleted) > 10*time.Second {
			t.Fatal("B still serves the deleted session 10 s after the delete")
		}
		time.Sleep(time.Millisecond)
	}
	window := time.Since(deleted)
	t.Logf("hung listener: B served the deleted session for %v after the delete (Lease %v)", window, defaults.Lease)
	// The bound is the lease; the slack is for a loaded machine.
	if limit := defaults.Lease + time.Second; window > limit {
		t.Fatalf("B served the deleted session for %v, want at most about the lease (%v)", window, limit)
	}
}

func TestPostgresCloseIsBoundedWhenDatabaseHangs(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	proxy := pgtest.NewProxy(t, dbURL)
	pool := pgtest.Pool(t, proxy.URL(dbURL)) // every connection of the store goes through it
	cfg := DefaultConfig()
	cfg.SweepInterval = time.Second
	s, err := New(context.Background(), pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "a", "1", time.Hour)

	proxy.Hang()
	hung := time.Now()
	go s.Get("cold") // a read left hanging
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.SetWithContext(ctx, "b", []byte("1"), time.Hour); err == nil { // a write that timed out
		t.Fatal("a write through a hung network succeeded")
	}
	eventually(t, 5*time.Second, "the read is in flight", func() bool { return s.Stats().Misses == 1 })
	time.Sleep(time.Until(hung.Add(cfg.SweepInterval + 200*time.Millisecond))) // a sweep is in flight too

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("Close with a hung database took %v", took)
	proxy.Close() // before the pool's own clean-up, which would wait on the hung connections
	if took > 2*time.Second {
		t.Fatalf("Close took %v with a hung database, want it bounded (well under 2 s)", took)
	}
}

func TestPostgresConnAndNilRuntimeParams(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.RuntimeParams = nil // a configuration built by hand may leave it nil
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := newPGStore(t, pool, nil)
	if s.Conn() != pool {
		t.Fatal("Conn() is not the pool the store runs on")
	}
	mustSet(t, s, "a", "1", time.Hour)
	wantValue(t, mustGet(t, s, "a"), "1")
}

func TestPostgresTombstonesOff(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	plain := newPGStore(t, pool, func(c *Config) { c.Tombstones = false })
	mustSet(t, plain, "k", "1", time.Hour)
	if err := plain.Delete("k"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, plain, "k", "2", time.Hour) // a limiter or a cache sets a key again at once
	wantValue(t, mustGet(t, plain, "k"), "2")
	if err := plain.Reset(); err != nil {
		t.Fatal(err)
	}
	mustSet(t, plain, "k", "3", time.Hour)
	wantValue(t, mustGet(t, plain, "k"), "3")
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM session_tombstones"); n != 0 {
		t.Fatalf("got %d tombstones with tombstones off, want 0", n)
	}
}

func TestPostgresConnectionsPerInstance(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	const maxConns = 3
	pool := pgtest.Pool(t, dbURL+"&application_name=store&pool_max_conns="+strconv.Itoa(maxConns))
	s := newPGStore(t, pool, nil)
	other := pgtest.Pool(t, dbURL)
	// Every statement of the store waits on this lock, holding its connection.
	tx := openTx(t, other, "LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { _ = s.Set("w"+strconv.Itoa(i), []byte("1"), time.Hour) })
		wg.Go(func() { _, _ = s.Get("r" + strconv.Itoa(i)) })
		wg.Go(func() { _ = s.Delete("d" + strconv.Itoa(i)) })
	}
	count := func() int64 {
		return pgtest.Count(t, other, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name IN ('store', $1)", ListenerApplicationName)
	}
	eventually(t, 10*time.Second, "the pool is in full use", func() bool {
		return pgtest.Count(t, other, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'store' AND wait_event_type = 'Lock'") >= maxConns
	})
	time.Sleep(200 * time.Millisecond) // room for any further connection to show up
	n := count()
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	t.Logf("connections of one instance under load: %d (pool MaxConns %d + the listener)", n, maxConns)
	if n > maxConns+1 {
		t.Fatalf("got %d connections, want at most MaxConns+1 = %d", n, maxConns+1)
	}
}

// TestPostgresTouchTellsNobody: a Touch is one statement that moves the row's expiry later;
// another instance hears nothing of it and keeps serving its copy, which is still correct; the
// same Touch from that instance writes nothing and brings its copy up to date. A Touch of a key
// deleted elsewhere fails and writes nothing.
func TestPostgresTouchTellsNobody(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewPool(t)
	var st pgtest.Counter
	a := newPGStore(t, pgtest.PoolWithCounter(t, dbURL, &st), ownedValues)
	b := newPGStore(t, pool, ownedValues)
	ctx := context.Background()
	heard := b.Stats().Invalidations
	mustSet(t, a, "x", "v", time.Minute)
	eventually(t, 5*time.Second, "B hears x written", func() bool { return b.Stats().Invalidations > heard })
	heard = b.Stats().Invalidations // x's own notification, and nothing else can come
	wantValue(t, mustGet(t, b, "x"), "v")

	until := time.Now().Add(time.Hour)
	mark := st.Mark()
	if err := a.Touch(ctx, "x", until); err != nil {
		t.Fatal(err)
	}
	if n, sqls := st.Since(mark); n != 1 {
		t.Errorf("Touch sent %d statements, want 1: %q", n, sqls)
	}
	if e := pgtest.Count(t, pool, "SELECT e FROM sessions WHERE k = $1", hashKey("x")); e < time.Now().Add(59*time.Minute).Unix() {
		t.Fatalf("row expiry after Touch: %d, want about an hour from now", e)
	}
	// A write B hears of, after the Touch: notifications arrive in commit order, so once B has
	// heard this one it would have heard the Touch's.
	mustSet(t, a, "barrier", "v", time.Minute)
	eventually(t, 5*time.Second, "B hears the barrier", func() bool { return b.Stats().Invalidations > heard })
	if got := b.Stats().Invalidations - heard; got != 1 {
		t.Fatalf("B heard %d notifications, want 1 (the barrier's): a Touch must tell nobody", got)
	}
	if !inMemory(b, "x") {
		t.Fatal("B dropped its copy of x after a Touch on A")
	}

	version := func() int64 { // the row's version: changes with every write of it
		return pgtest.Count(t, pool, "SELECT xmin::text::bigint FROM sessions WHERE k = $1", hashKey("x"))
	}
	before := version()
	if err := b.Touch(ctx, "x", until); err != nil {
		t.Fatal(err)
	}
	if after := version(); after != before {
		t.Errorf("a Touch to the expiry the row has wrote it (version %d -> %d)", before, after)
	}
	if _, exp, err := b.GetDecoded(ctx, "x"); err != nil || exp.Unix() != until.Unix() {
		t.Errorf("B's copy after its Touch: expires %v, %v; want %v", exp, err, until.Truncate(time.Second))
	}

	if err := b.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if err := a.Touch(ctx, "x", time.Now().Add(time.Hour)); !errors.Is(err, ErrDeleted) {
		t.Fatalf("Touch after a Delete on B: got %v, want ErrDeleted", err)
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions WHERE k = $1", hashKey("x")); n != 0 {
		t.Fatal("Touch brought a deleted key back")
	}
}

// TestPostgresTouchWaitingOnAConcurrentChange: a Touch whose UPDATE waits for a row another
// transaction is changing answers from what that transaction committed: ErrDeleted after a
// delete (a logout elsewhere), the row's new expiry after another instance's refresh.
func TestPostgresTouchWaitingOnAConcurrentChange(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	s := newPGStore(t, pool, ownedValues)
	ctx := context.Background()
	for _, tc := range []struct {
		name, change string
		want         error
	}{
		{"delete", "DELETE FROM sessions WHERE k = $1", ErrDeleted},
		{"refresh past it", "UPDATE sessions SET e = e + 7200 WHERE k = $1", nil},
		{"refresh short of it", "UPDATE sessions SET e = e + 1 WHERE k = $1", nil}, // moved on the first run
	} {
		key := "race-" + tc.name
		mustSet(t, s, key, "v", time.Minute)
		tx := openTx(t, pool, tc.change, hashKey(key)) // rolled back if the test stops early
		until := time.Now().Add(time.Hour)
		done := make(chan error, 1)
		go func() { done <- s.Touch(ctx, key, until) }()
		eventually(t, 10*time.Second, "the Touch waits for the row", func() bool {
			return pgtest.Count(t, pool, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'WITH cur AS%'`) == 1
		})
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		err := <-done
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s: Touch got %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == nil {
			rowE := pgtest.Count(t, pool, "SELECT e FROM sessions WHERE k = $1", hashKey(key))
			if rowE < until.Unix() {
				t.Errorf("%s: the row expires at %d, before the Touch's %d", tc.name, rowE, until.Unix())
			}
			if _, exp, err := s.GetDecoded(ctx, key); err != nil || exp.Unix() != rowE {
				t.Errorf("%s: the copy after the Touch expires %v, %v; want the row's %d", tc.name, exp, err, rowE)
			}
		}
	}
}

// TestPostgresReadOutlivingItsCallerKeepsTheCallersKey: a Get whose context ends mid-read, and
// whose key's buffer is then reused, must not file the row it read under the buffer's new bytes.
func TestPostgresReadOutlivingItsCallerKeepsTheCallersKey(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	writer := newPGStore(t, pool, nil)
	mustSet(t, writer, "session-A", "A's value", time.Hour)
	s := newPGStore(t, pool, nil)
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.setHook(func(point, _ string) {
		if point == "load:before" {
			once.Do(func() { close(reached); <-release })
		}
	})
	buf := []byte("session-A")
	key := unsafe.String(&buf[0], len(buf)) // as Fiber hands it: pointing into its buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := s.GetWithContext(ctx, key); done <- err }()
	<-reached
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get whose context ended mid-read: got %v, want context.Canceled", err)
	}
	copy(buf, "session-B") // the buffer now serves the next request
	close(release)
	eventually(t, 10*time.Second, "the read finishes", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.flights) == 0 })
	wantValue(t, mustGet(t, s, "session-B"), "")
	wantValue(t, mustGet(t, s, "session-A"), "A's value")
}

// TestPostgresStampedeIsOneQueryEveryTime: 100 concurrent Gets of a cold key make exactly one
// SELECT, in each of 200 runs; the notification of the key's write reaches the reader at any
// point of the run, mid-read included.
func TestPostgresStampedeIsOneQueryEveryTime(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	var c pgtest.Counter
	writer := newPGStore(t, pgtest.Pool(t, dbURL), nil)
	s := newPGStore(t, pgtest.PoolWithCounter(t, dbURL, &c), nil)
	const runs, n = 200, 100
	var bad []string
	for run := range runs {
		key := "cold-" + strconv.Itoa(run)
		mustSet(t, writer, key, "v", time.Hour)
		_, before := c.Count("SELECT v, e")
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				<-start
				if v, err := s.Get(key); err != nil || string(v) != "v" {
					t.Errorf("run %d: got %q, %v; want \"v\"", run, v, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if _, after := c.Count("SELECT v, e"); after-before != 1 {
			bad = append(bad, fmt.Sprintf("run %d: %d", run, after-before))
		}
	}
	t.Logf("%d concurrent cold Gets: exactly 1 SELECT in %d of %d runs", n, runs-len(bad), runs)
	if len(bad) > 0 {
		t.Fatalf("%d of %d runs of %d concurrent Gets did not make exactly 1 SELECT: %v", len(bad), runs, n, bad)
	}
}

// TestPostgresDeleteRefusesLateSaveWhateverTheClocks: with the store's clock far behind or ahead
// of the database's, a Delete still refuses a later save, until the row's own expiry as the store
// counts it; then the sweep, on the store's clock, removes the tombstone.
func TestPostgresDeleteRefusesLateSaveWhateverTheClocks(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{-48 * time.Hour, 48 * time.Hour} {
		t.Run("store clock "+skew.String(), func(t *testing.T) {
			t.Parallel()
			pool, _ := pgtest.NewPool(t)
			clock := testclock.New(time.Now().Add(skew))
			s := newPGStore(t, pool, func(c *Config) { c.Now, c.SweepInterval = clock.Now, time.Hour })
			mustSet(t, s, "s", "logged in", time.Hour)
			loaded := mustGet(t, s, "s")
			if err := s.Delete("s"); err != nil {
				t.Fatal(err)
			}
			if err := s.Set("s", loaded, time.Hour); !errors.Is(err, ErrDeleted) {
				t.Fatalf("late save after Delete: got %v, want ErrDeleted", err)
			}
			if n := pgtest.Count(t, pool, "SELECT count(*) FROM sessions"); n != 0 {
				t.Fatal("a late save re-created the deleted session")
			}
			s.flushAll()
			wantValue(t, mustGet(t, s, "s"), "")

			clock.Advance(time.Hour - time.Second)
			if err := s.tier.sweep(context.Background(), clock.Now()); err != nil {
				t.Fatal(err)
			}
			if n := pgtest.Count(t, pool, "SELECT count(*) FROM session_tombstones"); n != 1 {
				t.Fatalf("got %d tombstones before the row's expiry, want 1", n)
			}
			clock.Advance(time.Second)
			if err := s.tier.sweep(context.Background(), clock.Now()); err != nil {
				t.Fatal(err)
			}
			if n := pgtest.Count(t, pool, "SELECT count(*) FROM session_tombstones"); n != 0 {
				t.Fatalf("got %d tombstones at the row's expiry on the store's clock, want 0", n)
			}
		})
	}
}

// TestPostgresTombstonesOffForEveryDelete: without tombstones, a key deleted by any path
// (DeleteOwner, DeleteHandle, a DELETE in SQL) may be set again at once.
func TestPostgresTombstonesOffForEveryDelete(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	s := newPGStore(t, pool, func(c *Config) { c.Tombstones = false; ownedValues(c) })
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		del  func(owner, key string)
	}{
		{"DeleteOwner", func(owner, _ string) {
			if n, err := s.DeleteOwner(ctx, owner); err != nil || n != 1 {
				t.Fatalf("DeleteOwner: got %d, %v; want 1 deleted", n, err)
			}
		}},
		{"DeleteHandle", func(owner, key string) {
			got, err := s.Owned(ctx, owner, key)
			if err != nil || len(got) != 1 {
				t.Fatalf("Owned: got %d rows, %v; want 1", len(got), err)
			}
			if deleted, _, err := s.DeleteHandle(ctx, owner, got[0].Handle, key); err != nil || !deleted {
				t.Fatalf("DeleteHandle: got %v, %v; want deleted", deleted, err)
			}
		}},
		{"SQL", func(_, key string) {
			pgtest.Exec(t, pool, "DELETE FROM sessions WHERE k = $1", hashKey(key))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, owner := "k-"+tc.name, "user-"+tc.name
			mustSet(t, s, key, owner+" first", time.Hour)
			tc.del(owner, key)
			// A DELETE in SQL leaves its tombstone (the trigger cannot know), which this store
			// ignores; its own deletes leave none.
			if n := pgtest.Count(t, pool, "SELECT count(*) FROM session_tombstones WHERE k = $1", hashKey(key)); n != 0 && tc.name != "SQL" {
				t.Errorf("%s left %d tombstones with tombstones off, want 0", tc.name, n)
			}
			if err := s.Set(key, []byte(owner+" again"), time.Hour); err != nil {
				t.Fatalf("Set after %s: got %v, want nil", tc.name, err)
			}
			wantValue(t, mustGet(t, s, key), owner+" again")
		})
	}
}

// TestPostgresDeadKeyCostsOneRead: a session deleted on another instance, asked for 500 times,
// costs this instance one SELECT; a late save of it is still refused and costs no more reads.
func TestPostgresDeadKeyCostsOneRead(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	var c pgtest.Counter
	a := newPGStore(t, pgtest.Pool(t, dbURL), nil)
	b := newPGStore(t, pgtest.PoolWithCounter(t, dbURL, &c), nil)
	var heard atomic.Int64 // notifications about s that B has applied
	b.setHook(func(point, k string) {
		if point == "notified" && k == hashKey("s") {
			heard.Add(1)
		}
	})
	mustSet(t, a, "s", "logged in", time.Hour)
	eventually(t, 10*time.Second, "B hears the write", func() bool { return heard.Load() == 1 })
	wantValue(t, mustGet(t, b, "s"), "logged in") // B serves the session from memory
	if err := a.Delete("s"); err != nil {         // the user logs out on A
		t.Fatal(err)
	}
	// A notification of the session's last write, arriving after B's first read of the dead
	// key, would make B forget it and read once more.
	eventually(t, 10*time.Second, "B hears the delete", func() bool { return heard.Load() == 2 })
	_, before := c.Count("SELECT v, e")
	for range 500 {
		wantValue(t, mustGet(t, b, "s"), "")
	}
	_, after := c.Count("SELECT v, e")
	t.Logf("500 Gets of a session deleted on another instance: %d SELECTs", after-before)
	if after-before != 1 {
		t.Fatalf("got %d SELECTs for 500 Gets of a deleted session, want 1", after-before)
	}
	if err := b.Set("s", []byte("late"), time.Hour); !errors.Is(err, ErrDeleted) {
		t.Fatalf("late save of a dead key: got %v, want ErrDeleted", err)
	}
	wantValue(t, mustGet(t, b, "s"), "")
	if _, after := c.Count("SELECT v, e"); after-before != 1 {
		t.Fatalf("got %d SELECTs after a refused save, want still 1", after-before)
	}

	// A key never written that another instance then creates is served once its notification
	// arrives.
	wantValue(t, mustGet(t, b, "new"), "")
	created := notified(b, "new")
	mustSet(t, a, "new", "v", time.Hour)
	<-created
	wantValue(t, mustGet(t, b, "new"), "v")
}

// TestPostgresNewRefusesTheOldTombstoneTrigger: a database whose tombstone trigger ignores the
// sessions.tombstones setting (an older schema, which also judged tombstones by the database's
// clock) is refused.
func TestPostgresNewRefusesTheOldTombstoneTrigger(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	if _, err := pool.Exec(context.Background(), `
		CREATE OR REPLACE FUNCTION sessions_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.e = 0 OR OLD.e > floor(extract(epoch FROM clock_timestamp()))::bigint THEN
				INSERT INTO session_tombstones (k, e) VALUES (OLD.k, OLD.e)
				ON CONFLICT (k) DO UPDATE SET e = greatest(session_tombstones.e, EXCLUDED.e);
			END IF;
			RETURN NULL;
		END $$`); err != nil {
		t.Fatal(err)
	}
	if s, err := New(context.Background(), pool, DefaultConfig()); err == nil {
		s.Close()
		t.Fatal("New succeeded with the previous tombstone triggers")
	}
}
