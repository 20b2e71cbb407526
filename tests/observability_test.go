package tests

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
)

// TestRequestLog sends a login, /me requests, a path that matches no route and a malformed
// request id: every request leaves one log line with every field and its id, a well-formed
// X-Request-Id is echoed and logged, a malformed one is replaced.
func TestRequestLog(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["LOG_FORMAT"] = "json"
	s := startServer(t, env, app.Hooks{})

	c := newClient(t)
	mustLogin(t, c, s, "ada@example.com", "correct horse battery staple")
	const warm = 5
	for range 1 + warm {
		mustMe(t, c, s, 200)
	}

	// A request that matches no route is logged under "unmatched", not its path, with the
	// well-formed id it came with.
	req, _ := http.NewRequest("GET", s.URL+"/no/such/page-12345", nil)
	req.Header.Set("X-Request-Id", "trace-abc.123")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "trace-abc.123" {
		t.Errorf("X-Request-Id echoed %q, want the well-formed one sent", got)
	}

	// A malformed id is replaced with a fresh one.
	req, _ = http.NewRequest("GET", s.URL+"/healthz", nil)
	req.Header.Set("X-Request-Id", "bad id\twith spaces")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \t") {
		t.Errorf("malformed X-Request-Id answered with %q, want a fresh well-formed id", got)
	}

	// One JSON log line per request, with every field, written within LOG_FLUSH_INTERVAL
	// (the default, 100ms) though no request follows and the server keeps running.
	want := 1 + 1 + warm + 2 // login, /me, warm /me, 404, /healthz
	var lines []map[string]any
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if lines = requestLines(t, s.Log.String()); len(lines) >= want || time.Now().After(deadline) {
			break
		}
	}
	if len(lines) != want {
		t.Fatalf("got %d request log lines, want %d:\n%s", len(lines), want, s.Log.String())
	}
	var traced map[string]any
	for _, rec := range lines {
		for _, k := range []string{"method", "route", "status", "duration", "bytes", "client", "request_id"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("request log line lacks %q: %v", k, rec)
			}
		}
		if rec["request_id"] == "trace-abc.123" {
			traced = rec
		}
	}
	if traced == nil || traced["route"] != "unmatched" || traced["status"] != float64(404) || traced["client"] != "127.0.0.1" {
		t.Errorf("the traced request's line: got %v, want route unmatched, status 404, client 127.0.0.1", traced)
	}
	t.Logf("a request's log line: %v", lines[2])
}

// requestLines returns the request lines among the JSON lines of log.
func requestLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if rec["msg"] == "request" {
			lines = append(lines, rec)
		}
	}
	return lines
}

// With request lines batched, every other line is written at once and the batch by the end
// of a graceful shutdown: with an interval longer than the test, a login's security event is
// in the log as soon as the login has answered, and every request line is there once Run has
// returned, in the order of the requests. (That the lines wait is TestBatchedRequestLines'.)
func TestRequestLinesWrittenByShutdown(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["LOG_FORMAT"] = "json"
	env["LOG_FLUSH_INTERVAL"] = "1h"
	s := startServer(t, env, app.Hooks{})
	c := newClient(t)
	mustLogin(t, c, s, "ada@example.com", "correct horse battery staple")
	if !strings.Contains(s.Log.String(), `"msg":"login"`) {
		t.Fatalf("the login's security event is not in the log at once:\n%s", s.Log.String())
	}
	const n = 20
	var ids []string
	for i := range n {
		req, _ := http.NewRequest("GET", s.URL+"/healthz", nil)
		id := "order-" + strconv.Itoa(i)
		req.Header.Set("X-Request-Id", id)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ids = append(ids, id)
	}
	s.Stop()
	lines := requestLines(t, s.Log.String())
	if len(lines) != 1+n {
		t.Fatalf("got %d request lines after the shutdown, want %d:\n%s", len(lines), 1+n, s.Log.String())
	}
	for i, id := range ids {
		if got := lines[1+i]["request_id"]; got != id {
			t.Errorf("request line %d has request_id %v, want %s (in the requests' order)", 1+i, got, id)
		}
	}
}
