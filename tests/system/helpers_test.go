// Package system holds the tests that need more than Go and PostgreSQL: the demo page in a real
// browser (Chromium, through chromedp) and the container files. It is a module of its own
// (tests/system/go.mod) so that chromedp and a YAML parser stay out of the template's go.mod;
// `task test` runs it after the main module's tests.
package system

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/storage"
)

// root is the template's root folder, seen from this module.
const root = "../.."

const (
	email    = "ada@example.com"
	password = "correct horse battery staple"
)

// server is one running instance of the real server.
type server struct{ URL string }

// baseEnv is the environment of a test server on dbURL: a free port on the loopback interface,
// no metrics listener, cookies over plain HTTP.
func baseEnv(dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":  dbURL,
		"HOST":          "127.0.0.1",
		"PORT":          "0",
		"COOKIE_SECURE": "false",
		"METRICS_ADDR":  "",
	}
}

func lookupEnv(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// startServer runs app.Run serve with env, waits until it listens, and stops it when the test
// ends, failing the test unless Run returns nil.
func startServer(t *testing.T, env map[string]string, hooks app.Hooks) *server {
	t.Helper()
	readyc := make(chan string, 1)
	hooks.Ready = func(addr string, _ *storage.Store) { readyc <- addr }
	// A wait for a hashing slot long enough that a login never gets 503 on a loaded machine.
	hooks.Config = func(c *app.Config) { c.Login.HashWait = 10 * time.Second }
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"serve"}, lookupEnv(env), strings.NewReader(""), io.Discard, &stderr, hooks)
	}()
	var addr string
	select {
	case addr = <-readyc:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server not listening after 30s\n%s", stderr.String())
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server Run returned %v, want nil after a graceful shutdown\n%s", err, stderr.String())
		}
	})
	return &server{URL: "http://" + addr}
}

// mustCreateUser creates a user through the CLI, as an operator would.
func mustCreateUser(t *testing.T, dbURL, email, password string) {
	t.Helper()
	var out, log strings.Builder
	if err := app.Run(context.Background(), []string{"user", "create", email}, lookupEnv(baseEnv(dbURL)),
		strings.NewReader(password+"\n"), &out, &log, app.Hooks{}); err != nil {
		t.Fatalf("user create %s: %v\n%s", email, err, log.String())
	}
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

// syncBuffer is a strings.Builder safe for the server's logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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
