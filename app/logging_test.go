package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/gofiber-template/sessions/handlers"
)

// A line logged with a request's context carries its id once, whether or not the logger
// already carries it (handlers.Logger's does); a line without one carries none.
func TestRequestIDHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := newLogger(Config{LogFormat: "text"}, &buf)
	ctx := handlers.WithRequestLog(context.Background(), log, "req-1")
	log.InfoContext(ctx, "from the context")
	log.With("request_id", "req-1").InfoContext(ctx, "from the logger and the context")
	log.With("user", 7).InfoContext(ctx, "other attributes")
	derived, cancel := context.WithCancel(ctx) // as a handler may hand it on
	defer cancel()
	log.InfoContext(derived, "from a derived context")
	log.Info("outside a request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for i, want := range []int{1, 1, 1, 1, 0} {
		if got := strings.Count(lines[i], "request_id=req-1"); got != want {
			t.Errorf("line %q: request_id %d times, want %d", lines[i], got, want)
		}
	}
}

// The request line the middleware encodes itself is, byte for byte, the line slog's JSON
// handler writes for the same record; a line it cannot promise that for (a string to escape)
// is left to slog, so every line reads the same.
func TestRequestLineMatchesSlog(t *testing.T) {
	t.Parallel()
	zones := []*time.Location{time.UTC, time.FixedZone("", -(3*3600 + 30*60)), time.FixedZone("CET", 3600)}
	times := []time.Time{
		time.Date(2026, 12, 2, 18, 4, 5, 0, time.UTC),
		time.Date(2026, 12, 2, 18, 4, 5, 120_000_000, time.UTC),
		time.Date(2026, 1, 9, 0, 0, 0, 123_456_789, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Now(),
	}
	odd := []string{"", "plain", `quote"`, `back\slash`, "tab\t", "nl\n", "ctl\x01\x7f", "é", "\u2028", "\xff", "<>&"}
	var lines []requestLine
	for i, tm := range times {
		for _, z := range zones {
			lines = append(lines, requestLine{
				time: tm.In(z), id: "q2WJ5XKDRA-" + strconv.Itoa(i), method: "GET", route: "/sessions/:id",
				status: 200 + i, duration: time.Duration(i) * 1234567, bytes: i * 31, client: "192.0.2.7",
			})
		}
	}
	for _, s := range odd {
		lines = append(lines, requestLine{time: times[1], id: s, method: s, route: s, client: s, status: -1, duration: -5})
	}
	for b := range 256 { // every byte in every string field
		s := "a" + string([]byte{byte(b)}) + "z"
		lines = append(lines, requestLine{time: times[2], id: "x", method: "GET", route: s, client: "::1"})
	}
	for _, l := range lines {
		var want bytes.Buffer
		h := slog.NewJSONHandler(&want, &slog.HandlerOptions{Level: slog.LevelInfo})
		if err := h.Handle(context.Background(), l.record()); err != nil {
			t.Fatal(err)
		}
		got, ok := l.appendJSON(nil)
		if ok && string(got) != want.String() {
			t.Errorf("got  %s\nwant %s", got, want.String())
		}
		if !ok && !strings.ContainsAny(l.route+l.id+l.method+l.client, "\"\\") && !hasControlOrNonASCII(l.route+l.id+l.method+l.client) {
			t.Errorf("line %+v left to slog, want it encoded", l)
		}
	}
}

func hasControlOrNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return true
		}
	}
	return false
}

// A server logging JSON writes, for a request, the line slog writes for its record.
func TestRequestLineFromServer(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	log := newLogger(Config{LogFormat: "json", LogLevel: slog.LevelInfo}, &buf)
	srv := fiber.New(serverConfig(DefaultConfig(), log))
	srv.Use(requestLog(log, nil, false))
	srv.Get("/x/:n", func(c *fiber.Ctx) error { return c.SendString("hello") })
	req := httptest.NewRequest("GET", "/x/1", nil)
	req.Header.Set(headerRequestID, "abc-1")
	if _, err := srv.Test(req, -1); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	line := buf.String()
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	tm, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	l := requestLine{time: tm, id: "abc-1", method: "GET", route: "/x/:n", status: 200,
		duration: time.Duration(rec["duration"].(float64)), bytes: 5, client: rec["client"].(string)}
	var want bytes.Buffer
	_ = slog.NewJSONHandler(&want, nil).Handle(context.Background(), l.record())
	// The time as the line wrote it, in the zone it wrote it in.
	wantLine := strings.Replace(want.String(), `"time":"`+tm.Format(time.RFC3339Nano)+`"`, `"time":"`+rec["time"].(string)+`"`, 1)
	if line != wantLine {
		t.Errorf("got  %s\nwant %s", line, wantLine)
	}
	if rec["client"] != "0.0.0.0" {
		t.Errorf("client %v, want 0.0.0.0 (app.Test's connection)", rec["client"])
	}
}

// Every line logged for a request, through handlers.Logger or with the request's context, carries
// the request's id once; so does a line logged with that context after the request, once later
// requests have come and gone: the context is the request's own, never reused.
func TestRequestLogContext(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	log := newLogger(Config{LogFormat: "text", LogLevel: slog.LevelInfo}, &buf)
	srv := fiber.New(serverConfig(DefaultConfig(), log))
	srv.Use(requestLog(log, nil, false))
	kept := make(chan context.Context, 2)
	srv.Get("/", func(c *fiber.Ctx) error {
		handlers.Logger(c).Info("from Logger")
		log.InfoContext(c.UserContext(), "from the context")
		kept <- c.UserContext() // as a handler may hand it to a goroutine
		return nil
	})
	for _, id := range []string{"abc-1", "abc-2"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(headerRequestID, id)
		if _, err := srv.Test(req, -1); err != nil {
			t.Fatal(err)
		}
	}
	first := <-kept
	log.InfoContext(first, "after the request")
	if id, ok := handlers.RequestID(first); !ok || id != "abc-1" {
		t.Errorf("RequestID of the first request's context after the second: %q, %v; want abc-1", id, ok)
	}
	for _, want := range []struct{ msg, id string }{
		{"msg=\"from Logger\"", "abc-1"}, {"msg=\"from the context\"", "abc-1"},
		{"msg=\"from Logger\"", "abc-2"}, {"msg=\"from the context\"", "abc-2"},
		{"msg=\"after the request\"", "abc-1"},
	} {
		found := false
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, want.msg) && strings.Contains(l, "request_id="+want.id) {
				found = true
				if n := strings.Count(l, "request_id="); n != 1 {
					t.Errorf("line %q: request_id %d times, want once", l, n)
				}
			}
		}
		if !found {
			t.Errorf("no line %s with request_id=%s in:\n%s", want.msg, want.id, buf.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The request line's client, read without Fiber's proxy check, is the address c.IP() gives for
// a request that came from no proxy.
func TestRemoteIP(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"192.0.2.7", "::ffff:192.0.2.7", "2001:db8::1", "::1", "fe80::1:2:3:4", "0.0.0.0"} {
		var ctx fasthttp.RequestCtx
		ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.ParseIP(addr), Port: 4711}, nil)
		if got, want := remoteIP(&ctx).String(), ctx.RemoteIP().String(); got != want {
			t.Errorf("%s: got %s, want %s", addr, got, want)
		}
	}
}
