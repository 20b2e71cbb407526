package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/internal/pgtest"
)

// TestShutdownIsBoundedWhenDatabaseHangs: after the signal, Run returns within SHUTDOWN_TIMEOUT
// plus 2 s even though the database's network hangs with a request's read in flight.
func TestShutdownIsBoundedWhenDatabaseHangs(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	proxy := pgtest.NewProxy(t, dbURL)
	const shutdownTimeout = time.Second
	vars := map[string]string{
		"DATABASE_URL":     proxy.URL(dbURL),
		"HOST":             "127.0.0.1",
		"PORT":             "0",
		"SHUTDOWN_TIMEOUT": shutdownTimeout.String(),
		"COOKIE_SECURE":    "false",
	}
	addr, cancel, done := serveForTest(t, vars)
	defer cancel()

	proxy.Hang()
	// A request whose database read hangs: the login's user lookup. (A made-up session cookie
	// would be refused before any lookup: ids are signed.)
	go func() {
		req, _ := http.NewRequest("POST", "http://"+addr+"/login",
			strings.NewReader(`{"email":"ada@example.com","password":"correct horse battery staple"}`))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond) // let it reach the database

	start := time.Now()
	cancel() // SIGTERM
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return 60 s after the signal")
	}
	took := time.Since(start)
	t.Logf("shutdown with a hung database took %v (SHUTDOWN_TIMEOUT %v)", took, shutdownTimeout)
	proxy.Close()
	if limit := shutdownTimeout + 2*time.Second; took > limit {
		t.Fatalf("shutdown took %v, want at most SHUTDOWN_TIMEOUT + 2 s = %v", took, limit)
	}
}
