package tests

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// TestDatabaseFaults runs two servers under a bounded load of logins, /me and logouts on a
// PostgreSQL of the test's own while that database has its connections terminated, is
// restarted, and is stopped for a few seconds then started again. A database fault may cost a
// 503 (with Retry-After), never a 500; no session acknowledged before or during the faults is
// lost; a logout is refused by the other server within a second once it can hear of it; and
// /readyz never calls a healthy database down.
func TestDatabaseFaults(t *testing.T) {
	const (
		clients       = 8
		keepers       = 20 // sessions made before the faults and checked after each
		phaseLen      = 3 * time.Second
		recoverWithin = 15 * time.Second // bound on each recovery; the figures are logged
	)
	cluster := pgtest.NewCluster(t)
	dbURL := withParam(t, cluster.CreateDatabase("app"), "pool_max_conns", "4")
	var users []credentials
	for i := range 4 {
		u := credentials{fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("fault test password number %d", i)}
		mustCreateUser(t, dbURL, u.email, u.password)
		users = append(users, u)
	}
	env := baseEnv(dbURL)
	a := startServer(t, env, app.Hooks{})
	b := startServer(t, env, app.Hooks{})
	servers := []*server{a, b}

	// Sessions acknowledged before any fault; each must still be valid on both servers after
	// every fault.
	kept := make([]*http.Client, keepers)
	for i := range kept {
		kept[i] = newClient(t)
		u := users[i%len(users)]
		mustLogin(t, kept[i], servers[i%2], u.email, u.password)
	}
	checkKept := func(after string) {
		t.Helper()
		for i, c := range kept {
			for _, s := range servers {
				if got := waitStatus(t, c, s, "/me", recoverWithin); got != http.StatusOK {
					t.Errorf("after %s: session %d acknowledged before the faults: GET %s/me: got %d, want 200", after, i, s.URL, got)
				}
			}
		}
	}
	checkKept("start")

	// recovered logs how long after back each server answered 200 on /readyz, and on /me with a
	// session made before the faults, probing all four at once.
	probe := kept[0]
	recovered := func(what string, back time.Time) {
		t.Helper()
		var wg sync.WaitGroup
		for _, s := range servers {
			for _, path := range []string{"/readyz", "/me"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, err := pollOK(probe, s.URL+path, back.Add(recoverWithin))
					if status != http.StatusOK {
						t.Errorf("%s: GET %s%s: still %d (%v) %v after the database was back, want 200", what, s.URL, path, status, err, recoverWithin)
						return
					}
					t.Logf("%s: %s%s answered 200 %v after the database was back", what, s.URL, path, time.Since(back).Round(time.Millisecond))
				}()
			}
		}
		wg.Wait()
	}

	l := newLoad(a, b, users, clients)
	l.allow503 = true
	l.sessionLen = func() time.Duration { return 200 * time.Millisecond }
	start := time.Now()
	l.start(clients)
	defer l.Stop() // if a check fails the test before the load stops

	l.setPhase("before")
	time.Sleep(phaseLen)

	l.setPhase("terminate")
	n := cluster.Terminate("app")
	back := time.Now()
	// The database is up: /readyz must say so at once, whatever state its pooled connections
	// are in.
	for _, s := range servers {
		if status, body := do(t, probe, "GET", s.URL+"/readyz", "", ""); status != http.StatusOK {
			t.Errorf("GET %s/readyz just after pg_terminate_backend: got %d %s, want 200: the database is up", s.URL, status, body)
		}
	}
	t.Logf("terminate: ended %d connections", n)
	recovered("terminate", back)
	time.Sleep(time.Until(back.Add(phaseLen)))
	checkKept("terminate")

	l.setPhase("restart")
	cluster.Restart()
	back = time.Now()
	recovered("restart", back)
	time.Sleep(time.Until(back.Add(phaseLen)))
	checkKept("restart")

	l.setPhase("stopped")
	cluster.Stop()
	time.Sleep(phaseLen)
	l.setPhase("started")
	cluster.Start()
	back = time.Now()
	recovered("stop and start", back)
	time.Sleep(time.Until(back.Add(phaseLen)))

	l.Stop()
	t.Logf("load ran %v", time.Since(start).Round(time.Millisecond))
	checkKept("stop and start")
	l.report(t, "before", "terminate", "restart", "stopped", "started")
	if t.Failed() {
		for _, s := range servers {
			t.Logf("log of %s:\n%s", s.URL, s.Log.String())
		}
	}
	if n := l.answers(http.StatusInternalServerError); n != 0 {
		t.Errorf("500 answers: got %d, want 0", n)
	}
	if n := l.answers(http.StatusOK); n == 0 {
		t.Error("no request succeeded: the load did not run")
	}
}

// waitStatus polls GET path on s for c until it answers anything but 503, or within passes,
// and returns the last status. Only a database fault may answer 503.
func waitStatus(t *testing.T, c *http.Client, s *server, path string, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		status, _ := do(t, c, "GET", s.URL+path, "", "")
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return status
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pollOK sends GET url with c until it answers 200 or deadline passes, and returns the last
// status (0 with the error when there was no answer). It is safe to call from any goroutine.
func pollOK(c *http.Client, url string, deadline time.Time) (int, error) {
	for {
		status, err := 0, error(nil)
		resp, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		if status == http.StatusOK || time.Now().After(deadline) {
			return status, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
