package storage

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/internal/testenv"
	"github.com/gofiber-template/sessions/migrations"
)

// traffic writes a session on s every interval until the test ends, so that the listeners of
// other instances are never silent for long, as under real load.
func traffic(t *testing.T, s *Store, interval time.Duration) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = s.Set("traffic", []byte(strconv.Itoa(i)), time.Hour)
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// staleFor polls key on s for watch after from and returns how long after from s last
// answered want (0 if it never did).
func staleFor(t *testing.T, s *Store, key, want string, from time.Time, watch time.Duration) time.Duration {
	t.Helper()
	var last time.Time
	for time.Since(from) < watch {
		if string(mustGet(t, s, key)) == want {
			last = time.Now() // after the answer: never shorter than the real window
		}
		time.Sleep(2 * time.Millisecond)
	}
	if last.IsZero() {
		return 0
	}
	return last.Sub(from)
}

// TestPostgresDelayedListenerServesWithinLease checks the lease against a slow path rather
// than a hung one: B's listening connection delivers everything, in order, but seconds late,
// while A keeps writing so that B's listener is never silent. A session deleted on A must not
// be served by B later than the lease after the delete began (B's clock, the test's), whether
// the delete lands as the delay begins or once it has lasted.
func TestPostgresDelayedListenerServesWithinLease(t *testing.T) {
	testenv.Slow(t) // seconds of delay, twice
	t.Parallel()
	defaults := DefaultConfig()
	// The bound is the lease; the margin is for a loaded machine's timers.
	const margin = 300 * time.Millisecond
	for _, delay := range []time.Duration{2 * time.Second, 4 * time.Second} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			dbURL := pgtest.NewURL(t)
			pool := pgtest.Pool(t, dbURL)
			proxy := pgtest.NewProxy(t, dbURL)
			a := newPGStore(t, pool, nil)
			b := newPGStore(t, pool, func(c *Config) {
				c.Lease, c.HealthInterval = defaults.Lease, defaults.HealthInterval
				c.ListenURL = proxy.URL(dbURL)
				// Long enough for every round trip through the delay to be answered: the
				// bound must not depend on a timeout cutting the slow connection.
				c.QueryTimeout = 4 * delay
			})
			traffic(t, a, 50*time.Millisecond)
			for _, k := range []string{"early", "late", "after"} {
				mustSet(t, a, k, "v", time.Hour)
			}

			// A healthy link: memory serves, lease after lease, with notifications flowing.
			wantValue(t, mustGet(t, b, "early"), "v")
			wantValue(t, mustGet(t, b, "late"), "v")
			st0, start := b.Stats(), time.Now()
			for time.Since(start) < 2*defaults.Lease {
				wantValue(t, mustGet(t, b, "early"), "v")
				time.Sleep(5 * time.Millisecond)
			}
			st1 := b.Stats()
			if st1.Reads != st0.Reads {
				t.Fatalf("B read PostgreSQL %d times over %v on a healthy link, want 0: memory must serve", st1.Reads-st0.Reads, 2*defaults.Lease)
			}
			t.Logf("healthy link: %.1f pings/s", float64(st1.Pings-st0.Pings)/time.Since(start).Seconds())

			proxy.Delay(delay)
			began := time.Now()
			if err := a.Delete("early"); err != nil {
				t.Fatal(err)
			}
			committed := time.Since(began)
			// Watch long enough for the delayed stream to settle into its new rhythm.
			early := staleFor(t, b, "early", "v", began, 2*delay+time.Second)

			began = time.Now()
			if err := a.Delete("late"); err != nil {
				t.Fatal(err)
			}
			late := staleFor(t, b, "late", "v", began, delay+defaults.Lease+time.Second)
			t.Logf("delivery delayed %v each way: B served a deleted session %v after the delete as the delay began, %v after one once it had lasted (lease %v; each delete committed within %v of its start)",
				delay, early.Round(time.Millisecond), late.Round(time.Millisecond), defaults.Lease, committed.Round(time.Millisecond))
			limit := defaults.Lease + margin
			if early > limit {
				t.Errorf("as the delay began: B served the deleted session %v after the delete, want at most the lease (%v)", early, limit)
			}
			if late > limit {
				t.Errorf("once the delay had lasted: B served the deleted session %v after the delete, want at most the lease (%v)", late, limit)
			}

			// Once the path is fast again, memory serves again.
			proxy.Delay(0)
			eventually(t, 2*delay+5*time.Second, "B serves from memory again", func() bool {
				h := b.Stats().Hits
				_, _ = b.Get("after")
				_, _ = b.Get("after")
				return b.Stats().Hits > h
			})
		})
	}
}

// logLine is a line a store logged about its listener.
type logLine struct {
	level         slog.Level
	msg           string
	state, reason string
}

// logCapture is a slog.Handler that keeps every line, for tests of what operators see.
type logCapture struct {
	mu    sync.Mutex
	lines []logLine
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	l := logLine{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "state":
			l.state = a.Value.String()
		case "reason":
			l.reason = a.Value.String()
		}
		return true
	})
	c.mu.Lock()
	c.lines = append(c.lines, l)
	c.mu.Unlock()
	return nil
}

// snapshot returns the lines so far.
func (c *logCapture) snapshot() []logLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// states returns the state of each line so far.
func (c *logCapture) states() []string {
	var st []string
	for _, l := range c.snapshot() {
		st = append(st, l.state)
	}
	return st
}

// count returns how many lines so far entered state.
func (c *logCapture) count(state string) int {
	n := 0
	for _, l := range c.snapshot() {
		if l.state == state {
			n++
		}
	}
	return n
}

// waitState waits until n lines entered state.
func (c *logCapture) waitState(t *testing.T, state string, n int, limit time.Duration) {
	t.Helper()
	eventually(t, limit, "log line "+state, func() bool { return c.count(state) >= n })
}

// countHook counts the store's test hook calls at point.
func countHook(s *Store, point string) *atomic.Int64 {
	var n atomic.Int64
	s.setHook(func(p, _ string) {
		if p == point {
			n.Add(1)
		}
	})
	return &n
}

func TestPostgresListenerOnAnotherDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	other := pgtest.NewURL(t) // migrated too: the schema check alone cannot tell
	cfg := DefaultConfig()
	cfg.ListenURL = other
	cfg.QueryTimeout = time.Second
	s, err := New(context.Background(), pool, cfg)
	if err == nil {
		_ = s.Close()
		t.Fatal("New accepted a listener on another database than the pool's")
	}
	if !errors.Is(err, ErrNotHeard) {
		t.Fatalf("got %v, want ErrNotHeard", err)
	}
	t.Logf("New: %v", err)
}

// TestPostgresListenerReconnectedToWrongDatabaseKeepsMemoryOff fails the listener's connection
// over to another server holding a migrated database of the same name: the reconnect
// succeeds, LISTEN succeeds, and nothing made through the pool is heard there. Memory must stay
// off until the listener is proven again on the right database.
func TestPostgresListenerReconnectedToWrongDatabaseKeepsMemoryOff(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	pool := pgtest.Pool(t, dbURL)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cluster := pgtest.NewCluster(t)
	wrong := cluster.CreateDatabase(strings.TrimPrefix(u.Path, "/"))
	if err := migrations.Up(pgtest.Pool(t, wrong)); err != nil {
		t.Fatal(err)
	}
	proxy := pgtest.NewProxy(t, dbURL)
	logs := &logCapture{}
	a := newPGStore(t, pool, nil)
	b := newPGStore(t, pool, func(c *Config) {
		c.ListenURL = proxy.URL(dbURL)
		c.QueryTimeout = time.Second
		c.Logger = slog.New(logs)
	})
	listens := countHook(b, "listener:listening")
	mustSet(t, a, "s", "v", time.Hour)
	wantValue(t, mustGet(t, b, "s"), "v")

	proxy.Retarget(wrong)
	eventually(t, 10*time.Second, "B listens on the wrong database", func() bool { return listens.Load() >= 1 })
	// A read now must not fill memory, and a delete on A (heard only on the right database)
	// must therefore be seen at once.
	wantValue(t, mustGet(t, b, "s"), "v")
	if err := a.Delete("s"); err != nil {
		t.Fatal(err)
	}
	wantValue(t, mustGet(t, b, "s"), "")
	logs.waitState(t, "not_heard", 1, 10*time.Second)
	failed := countHook(b, "listener:failed")
	eventually(t, 10*time.Second, "B retries", func() bool { return failed.Load() >= 2 })
	if st := b.Stats(); st.Listening {
		t.Fatalf("got Listening %v on the wrong database, want false: memory must stay off", st.Listening)
	}
	mustSet(t, a, "t", "1", time.Hour)
	for range 3 {
		wantValue(t, mustGet(t, b, "t"), "1")
	}
	if inMemory(b, "t") {
		t.Fatal("B filled memory while its listener hears nothing sent through the pool")
	}

	proxy.Retarget(dbURL)
	eventually(t, 10*time.Second, "B listens on the right database again", func() bool { return b.Stats().Listening })
	wantValue(t, mustGet(t, b, "t"), "1")
	if !inMemory(b, "t") {
		t.Fatal("B's memory does not serve once the listener is proven again")
	}
	t.Logf("log: %v", logs.states())
}

// TestPostgresListenerLogsEachChangeOfState drives the listener's connection through a slow
// path, a server that stops and comes back: one line per change of state, WARN when memory
// stops serving, INFO when it serves again, and none per failed retry.
func TestPostgresListenerLogsEachChangeOfState(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	pool := pgtest.Pool(t, dbURL)
	proxy := pgtest.NewProxy(t, dbURL)
	logs := &logCapture{}
	s := newPGStore(t, pool, func(c *Config) {
		c.Lease, c.HealthInterval, c.QueryTimeout = time.Second, 300*time.Millisecond, 2*time.Second
		c.ListenURL = proxy.URL(dbURL)
		c.Logger = slog.New(logs)
	})
	failed := countHook(s, "listener:failed")
	logs.waitState(t, "serving", 1, 5*time.Second)

	proxy.Delay(3 * time.Second) // pings come back too late
	logs.waitState(t, "lease_expired", 1, 10*time.Second)
	proxy.Down() // then the server goes away
	logs.waitState(t, "lost", 1, 10*time.Second)
	eventually(t, 10*time.Second, "several failed reconnects", func() bool { return failed.Load() >= 5 })
	proxy.Delay(0)
	proxy.Up()
	logs.waitState(t, "serving", 2, 10*time.Second)

	lines := logs.snapshot()
	for _, l := range lines {
		t.Logf("%s %s state=%s reason=%q", l.level, l.msg, l.state, l.reason)
	}
	want := []string{"serving", "lease_expired", "lost", "reconnecting", "serving"}
	if got := logs.states(); !slices.Equal(got, want) {
		t.Fatalf("got states %q, want %q (after %d failed attempts)", got, want, failed.Load())
	}
	for _, l := range lines {
		wantLevel := slog.LevelWarn
		if l.state == "serving" {
			wantLevel = slog.LevelInfo
		}
		if l.level != wantLevel || l.reason == "" {
			t.Errorf("%s line: got level %v, reason %q; want %v and a reason", l.state, l.level, l.reason, wantLevel)
		}
	}
}

// TestProbeNotificationChangesNothing: every instance hears every other's probes (and its own
// late ones); a probe must neither flush memory nor count as a change.
func TestProbeNotificationChangesNothing(t *testing.T) {
	t.Parallel()
	s, _, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "1", time.Hour)
	before := s.Stats()
	s.apply("p 0123456789abcdef0123456789abcdef")
	if st := s.Stats(); st.Flushes != before.Flushes || st.Invalidations != before.Invalidations || !inMemory(s, "a") {
		t.Fatalf("after a probe: got %d flushes, %d invalidations, in memory %v; want %d, %d, true",
			st.Flushes, st.Invalidations, inMemory(s, "a"), before.Flushes, before.Invalidations)
	}
}
