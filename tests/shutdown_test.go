package tests

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// TestShutdownDrains: on the signal, /readyz answers 503 for the drain while every other
// request, on connections old and new, is still served; once the drain is over the server
// refuses new connections, finishes the request in flight, and Run returns nil. The drain's
// timer is the test's own (Hooks.DrainAfter), so nothing here depends on how long anything
// takes; the request in flight is a login whose read of the users table waits on a lock the
// test holds.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	env["SHUTDOWN_DRAIN"] = "1h" // ended by the test, never by the clock
	env["SHUTDOWN_TIMEOUT"] = "1m"
	env["DB_QUERY_TIMEOUT"] = "1m" // the login in flight waits on the test's lock
	drainStarted := make(chan time.Duration, 1)
	endDrain := make(chan time.Time)
	s := startServer(t, env, app.Hooks{DrainAfter: func(d time.Duration) <-chan time.Time {
		drainStarted <- d
		return endDrain
	}})
	addr := strings.TrimPrefix(s.URL, "http://")
	browser := newClient(t) // keeps its connection alive
	mustLogin(t, browser, s, email, password)
	sid := sessionCookie(t, browser, s)
	fresh := func() *http.Client { // a new connection for every request
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	if status, body := do(t, fresh(), "GET", s.URL+"/readyz", "", ""); status != http.StatusOK {
		t.Fatalf("/readyz before the signal: got %d %s, want 200", status, body)
	}

	// The request in flight: a login whose user lookup waits for the lock.
	ctx := context.Background()
	tx, err := pgtest.Pool(t, dbURL).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back below; this only covers a failure
	if _, err := tx.Exec(ctx, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	slow := make(chan int, 1)
	go func() {
		resp, err := fresh().Post(s.URL+"/login", "application/json", strings.NewReader(loginBody(email, password)))
		if err != nil {
			t.Errorf("the login in flight: %v", err)
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	waitFor(t, "the login to wait on the lock", func() bool {
		return pgtest.Count(t, pgtest.Pool(t, dbURL), "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'users'::regclass") > 0
	})

	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }() // SIGTERM; Stop fails the test unless Run returns nil
	select {
	case d := <-drainStarted:
		if d != time.Hour {
			t.Errorf("drain of %v, want SHUTDOWN_DRAIN's 1h", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no drain 30 s after the signal")
	}

	// During the drain: not ready, yet everything is served.
	for _, c := range []*http.Client{fresh(), browser} {
		resp := doResp(t, c, "GET", s.URL+"/readyz", "", "")
		if body := readBody(t, resp); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("/readyz during the drain: got %d %s (Retry-After %q), want 503 with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
	}
	const during = 20
	refused := 0
	for i := range during {
		c := fresh()
		if i%2 == 1 {
			c = browser
		}
		// A guarded route that reads only the sessions table: the test holds a lock on users
		// (and a /me of yours may read it).
		req, _ := http.NewRequest("GET", s.URL+"/sessions", nil)
		req.AddCookie(&http.Cookie{Name: "session", Value: sid})
		resp, err := c.Do(req)
		if err != nil {
			refused++
			t.Errorf("GET /sessions during the drain: %v", err)
			continue
		}
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /sessions during the drain: got %d %s, want 200", resp.StatusCode, body)
		}
	}
	t.Logf("during the drain: %d of %d requests refused; /readyz 503", refused, during)
	select {
	case <-slow:
		t.Fatal("the login in flight finished while the test holds its lock")
	default:
	}

	// After it: no new connection, the login in flight still finishes, and Run returns nil.
	close(endDrain)
	waitFor(t, "the server to refuse new connections", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return false
		}
		if errors.Is(err, syscall.ECONNRESET) {
			return false // caught in the accept queue as the listener closed: try again
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial after the drain: %v, want connection refused", err)
		}
		return true
	})
	select {
	case <-stopped:
		t.Fatal("Run returned with a request still in flight")
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case status := <-slow:
		if status != http.StatusOK {
			t.Errorf("the login in flight at shutdown: got %d, want 200", status)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the login in flight did not finish 30 s after the lock was released")
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30 s after the last request finished")
	}
}

// waitFor polls cond every 10 ms until it holds, and fails the test if it does not within 30 s
// (a bound for a stuck test, not a measurement).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
