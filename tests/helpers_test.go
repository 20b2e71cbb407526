package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"

	"github.com/gofiber-template/sessions/internal/testclock"
)

// server is one running instance of the real server.
type server struct {
	URL   string         // http://127.0.0.1:port
	Store *storage.Store // its session store, for its counters
	Log   *syncBuffer    // what it logged
	stop  func()
}

// Stop shuts the server down gracefully and fails the test unless Run returns nil.
func (s *server) Stop() { s.stop() }

// baseEnv is the environment of a test server on dbURL: a free port on the loopback interface,
// cookies over plain HTTP, no drain at shutdown (the test of the drain sets its own), no other
// listener and text logs.
func baseEnv(dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":   dbURL,
		"HOST":           "127.0.0.1",
		"PORT":           "0",
		"COOKIE_SECURE":  "false",
		"SHUTDOWN_DRAIN": "0",
		"METRICS_ADDR":   "",     // off; tests that scrape set 127.0.0.1:0; optional: metrics
		"LOG_FORMAT":     "text", // the tests that read logs parse key=value
	}
}

// lookupEnv looks variables up in env only, so the tests never depend on the machine's
// environment.
func lookupEnv(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// startServer runs app.Run serve with env and hooks, waits until it listens, and stops it when
// the test ends if the test has not.
func startServer(t testing.TB, env map[string]string, hooks app.Hooks) *server {
	t.Helper()
	type ready struct {
		addr  string
		store *storage.Store
	}
	readyc := make(chan ready, 1)
	hooks.Ready = func(addr string, store *storage.Store) { readyc <- ready{addr, store} }
	// A wait for a hashing slot long enough that a login never gets 503 on a machine loaded by
	// the other tests; the test of that wait sets its own.
	own := hooks.Config
	hooks.Config = func(c *app.Config) {
		c.Login.HashWait = 10 * time.Second
		if own != nil {
			own(c)
		}
	}
	if _, ok := env["GOMEMLIMIT"]; !ok {
		env = maps.Clone(env)
		env["GOMEMLIMIT"] = "off" // serve sets it for the whole process: here, the tests'
	}

	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"serve"}, lookupEnv(env), strings.NewReader(""), io.Discard, stderr, hooks)
	}()

	var r ready
	select {
	case r = <-readyc:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server not listening after 30s\n%s", stderr.String())
	}

	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server Run returned %v, want nil after a graceful shutdown\n%s", err, stderr.String())
			}
		})
	}
	t.Cleanup(stop)
	return &server{URL: "http://" + r.addr, Store: r.store, Log: stderr, stop: stop}
}

// syncBuffer is a bytes.Buffer safe for the server's logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runCLI runs one command of the program against env, with stdin, and returns its output.
func runCLI(t testing.TB, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := app.Run(context.Background(), args, lookupEnv(env), strings.NewReader(stdin), &stdout, &stderr, app.Hooks{})
	return stdout.String(), err
}

// mustCreateUser creates a user through the CLI, as an operator would.
func mustCreateUser(t testing.TB, dbURL, email, password string) {
	t.Helper()
	if out, err := runCLI(t, baseEnv(dbURL), password+"\n", "user", "create", email); err != nil {
		t.Fatalf("user create %s: %v\n%s", email, err, out)
	}
}

// withUser creates a fresh database with the test user (email, password) and returns its URL
// and the environment of a server on it (baseEnv), for the test to adjust.
func withUser(t testing.TB) (dbURL string, env map[string]string) {
	t.Helper()
	dbURL = pgtest.NewURL(t)
	mustCreateUser(t, dbURL, email, password)
	return dbURL, baseEnv(dbURL)
}

// startCounted starts a server as startServer does, with a statement counter on its database
// pool (which the session store shares), and returns both.
func startCounted(t testing.TB, env map[string]string, hooks app.Hooks) (*server, *pgtest.Counter) {
	t.Helper()
	st := new(pgtest.Counter)
	hooks.PoolConfig = st.Install
	return startServer(t, env, hooks), st
}

// newClient returns an HTTP client with a cookie jar of its own: one browser. The jar keys
// cookies by host, not port, so one client carries its session to every test server.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// do sends one request and returns the status and body.
func do(t *testing.T, c *http.Client, method, url, contentType, body string) (int, string) {
	t.Helper()
	resp := doResp(t, c, method, url, contentType, body)
	return resp.StatusCode, readBody(t, resp)
}

func doResp(t *testing.T, c *http.Client, method, url, contentType, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func loginBody(email, password string) string {
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	return string(b)
}

// mustLogin logs c in on s and returns the user the server answered with.
func mustLogin(t *testing.T, c *http.Client, s *server, email, password string) users.User {
	t.Helper()
	status, body := do(t, c, "POST", s.URL+"/login", "application/json", loginBody(email, password))
	if status != http.StatusOK {
		t.Fatalf("login %s: got %d %s, want 200", email, status, body)
	}
	var u users.User
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatalf("login %s: body %q: %v", email, body, err)
	}
	return u
}

// me returns the status of GET /me for c on s.
func me(t *testing.T, c *http.Client, s *server) int {
	t.Helper()
	status, _ := do(t, c, "GET", s.URL+"/me", "", "")
	return status
}

// mustMe fails the test unless GET /me answers want.
func mustMe(t *testing.T, c *http.Client, s *server, want int) {
	t.Helper()
	if got := me(t, c, s); got != want {
		t.Fatalf("GET %s/me: got %d, want %d", s.URL, got, want)
	}
}

// sessionCookie returns the session cookie c's jar holds for s, or "" when there is none.
func sessionCookie(t *testing.T, c *http.Client, s *server) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "session" {
			return ck.Value
		}
	}
	return ""
}

// withCookie returns a fresh client (no jar) that sends the session cookie value on every
// request: a copy of a browser's session, kept after that browser logs out.
func withCookie(value string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: cookieTransport{value}}
}

type cookieTransport struct{ value string }

func (ct cookieTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.AddCookie(&http.Cookie{Name: "session", Value: ct.value})
	return http.DefaultTransport.RoundTrip(req)
}

// eventually polls GET /me for c on s until it answers want, and fails the test if that takes
// longer than within. It returns how long it took.
func eventually(t *testing.T, c *http.Client, s *server, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		got := me(t, c, s)
		if got == want {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s/me: still %d after %v, want %d", s.URL, got, within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newClock returns a settable clock for session expiry, at the present: tests move time instead
// of waiting for it.
func newClock() *testclock.Clock { return testclock.New(time.Now()) }

// sessionRows counts the rows of the sessions table.
func sessionRows(t *testing.T, dbURL string) int64 {
	t.Helper()
	return pgtest.Count(t, pgtest.Pool(t, dbURL), "SELECT count(*) FROM sessions")
}

// apiUser is what the template's endpoints say of a user: the fields its tests check, so that
// a field added to the response breaks none of them.
type apiUser struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

// decodeUser decodes a JSON body that describes a user, failing the test when it does not.
func decodeUser(t *testing.T, body string) apiUser {
	t.Helper()
	var u apiUser
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatalf("want a JSON user, got %q: %v", body, err)
	}
	return u
}

// noSweep keeps the store's periodic sweep of expired rows, the one statement an idle server
// sends, out of a test's statement counts.
func noSweep(c *app.Config) { c.Store.SweepInterval = time.Hour }
