package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/internal/testenv"
)

// TestSoak runs 64 browsers (login, /me on both servers, logout, and a check that the other
// server refuses the ended session) against two servers on one database for SOAK_DURATION
// (default 10s; go tool task soak runs 60s). It fails on any 5xx, on any session lost, on a
// logout not refused by the other server within a second, on PostgreSQL connections beyond what
// the servers' pools allow, and on goroutines or heap that grew over the run. The figures are
// logged.
func TestSoak(t *testing.T) {
	testenv.Slow(t)
	duration := 10 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("SOAK_DURATION=%q: want a positive duration such as 60s", v)
		}
		duration = d
	}
	const (
		clients   = 64
		poolConns = 6
		// Each server holds its pool, the session store's write pool (as large) and the
		// listener's connection.
		maxConns = 2 * (2*poolConns + 1)
		// The run is flat when, after GC, it ends with at most this many more goroutines and
		// this much more heap than it began with: a leak of one goroutine or 1 KiB per request
		// exceeds both within seconds.
		goroutineSlack = 100
		heapSlack      = 32 << 20
	)
	dbURL := withParam(t, pgtest.NewURL(t), "pool_max_conns", fmt.Sprint(poolConns))
	var users []credentials
	for i := range 8 {
		u := credentials{fmt.Sprintf("soak%d@example.com", i), fmt.Sprintf("soak test password number %d", i)}
		mustCreateUser(t, dbURL, u.email, u.password)
		users = append(users, u)
	}
	env := baseEnv(dbURL)
	// The test keeps each server's log in memory: a line per request would grow the heap that
	// this test measures. Warnings and errors are still kept.
	env["LOG_LEVEL"] = "warn"
	a := startServer(t, env, app.Hooks{})
	b := startServer(t, env, app.Hooks{})

	// Count the database's connections, every 20 ms, from a connection of the test's own.
	monitor := pgtest.Pool(t, dbURL)
	var (
		connMu   sync.Mutex
		peak     int64
		monErr   error
		monStop  = make(chan struct{})
		monDone  = make(chan struct{})
		monCount = func() (int64, error) {
			var n int64
			err := monitor.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n)
			return n, err
		}
	)
	go func() {
		defer close(monDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-monStop:
				return
			case <-tick.C:
			}
			n, err := monCount()
			connMu.Lock()
			peak = max(peak, n)
			if err != nil && monErr == nil {
				monErr = err
			}
			connMu.Unlock()
		}
	}()

	// A browser keeps its session 2 to 6 s, so that the browsers do not log in in step and most
	// requests are those of a session in use. Logins in flight are bounded by the hashing slots
	// of a small machine (2), so that the run measures steady use, not the queue for password
	// hashing, which costs 40 ms of a core per login (300 ms and more under -race).
	run := func(phase string, d time.Duration) *load {
		l := newLoad(a, b, users, clients)
		l.sessionLen = func() time.Duration { return 2*time.Second + rand.N(4*time.Second) }
		l.logins = make(chan struct{}, 2)
		l.setPhase(phase)
		l.start(clients)
		time.Sleep(d)
		l.Stop()
		return l
	}

	// Warm up first, so that pools, workers and buffers exist before the first reading.
	warm := run("warm-up", 2*time.Second)
	g0, h0 := settle(0)
	start := time.Now()
	l := run("soak", duration)
	took := time.Since(start)
	g1, h1 := settle(g0 + 20)
	close(monStop)
	<-monDone

	warm.report(t, "warm-up")
	l.report(t, "soak")
	t.Logf("soak: %d clients, %v, %d requests (%.0f/s); goroutines %d before, %d after; heap %.1f MiB before, %.1f MiB after; peak PostgreSQL connections %d (pools allow %d)",
		clients, took.Round(time.Millisecond), l.requests.Load(), float64(l.requests.Load())/took.Seconds(),
		g0, g1, float64(h0)/(1<<20), float64(h1)/(1<<20), peak, maxConns)
	if n := l.requests.Load(); n < int64(clients) {
		t.Errorf("requests: got %d, want at least one per client", n)
	}
	if g1 > g0+goroutineSlack {
		t.Errorf("goroutines: %d after the run, %d before: more than %d new", g1, g0, goroutineSlack)
	}
	if h1 > h0+heapSlack {
		t.Errorf("heap: %.1f MiB after the run, %.1f MiB before: more than %d MiB grown", float64(h1)/(1<<20), float64(h0)/(1<<20), heapSlack>>20)
	}
	if monErr != nil {
		t.Errorf("counting connections: %v", monErr)
	}
	if peak > maxConns {
		t.Errorf("PostgreSQL connections: peak %d, want at most %d (2 servers × (2 pools × %d + listener))", peak, maxConns, poolConns)
	}
}

// settle waits, up to 25 s, until at most want goroutines run (want 0: no wait), then returns
// the goroutine count and the live heap after a full collection. The wait lets idle goroutines
// end: fasthttp ends a worker 10 to 20 s after its last request.
func settle(want int) (goroutines int, heap uint64) {
	deadline := time.Now().Add(25 * time.Second)
	for want > 0 && runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	runtime.GC()
	runtime.GC() // the second frees what sync.Pools kept through the first
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapAlloc
}

// withParam returns rawURL with the query parameter name set to value.
func withParam(t *testing.T, rawURL, name, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}
