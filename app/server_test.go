package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/helmet"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/gofiber-template/sessions/storage"
)

func TestErrorHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantBody string
		wantLog  bool
	}{
		{"fiber error", fiber.NewError(fiber.StatusTeapot, "short and stout"), 418, `{"error":"short and stout"}`, false},
		{"wrapped fiber error", fmt.Errorf("ctx: %w", fiber.ErrBadRequest), 400, `{"error":"Bad Request"}`, false},
		{"session deleted meanwhile", fmt.Errorf("refresh session: %w", storage.ErrDeleted), 401, `{"error":"login required"}`, false},
		{"database too slow", fmt.Errorf("find user: %w", context.DeadlineExceeded), 503, `{"error":"service unavailable"}`, true},
		{"anything else", errors.New("secret detail: password=hunter2"), 500, `{"error":"internal server error"}`, true},
		{"service unavailable with cause", fmt.Errorf("%w: %w", fiber.NewError(503, "database unavailable"), errors.New("dial tcp: refused")),
			503, `{"error":"database unavailable"}`, true},
		// pgfault's tests provoke each of these against a real server; here only their mapping.
		{"pooled connection terminated", fmt.Errorf("load session: storage: get: %w",
			&pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}),
			503, `{"error":"service unavailable"}`, true},
		{"read-only after a failover", fmt.Errorf("login: save session: %w", &pgconn.PgError{Severity: "ERROR", Code: "25006"}),
			503, `{"error":"service unavailable"}`, true},
		{"connection lost mid-query", fmt.Errorf("logout: %w", io.ErrUnexpectedEOF), 503, `{"error":"service unavailable"}`, true},
		{"a bug in SQL", fmt.Errorf("find user: %w", &pgconn.PgError{Severity: "ERROR", Code: "42601"}),
			500, `{"error":"internal server error"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			srv := fiber.New(fiber.Config{ErrorHandler: errorHandler(slog.New(slog.NewTextHandler(&logs, nil)))})
			srv.Get("/", func(*fiber.Ctx) error { return tt.err })
			resp, err := srv.Test(httptest.NewRequest("GET", "/", nil), -1)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || string(body) != tt.wantBody {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
			if got, want := resp.Header.Get(fiber.HeaderRetryAfter) != "", tt.wantCode == 503; got != want {
				t.Errorf("Retry-After %q; want one: %v", resp.Header.Get(fiber.HeaderRetryAfter), want)
			}
			if logged := logs.Len() > 0; logged != tt.wantLog {
				t.Errorf("logged %q; want a log line: %v", logs.String(), tt.wantLog)
			}
			if tt.wantLog && !strings.Contains(logs.String(), tt.err.Error()) {
				t.Errorf("log %q lacks the error %q", logs.String(), tt.err)
			}
		})
	}
}

// A 503 whose handler chose its own Retry-After keeps it.
func TestErrorHandlerKeepsRetryAfter(t *testing.T) {
	t.Parallel()
	srv := fiber.New(fiber.Config{ErrorHandler: errorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	srv.Get("/", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderRetryAfter, "7")
		return fiber.NewError(fiber.StatusServiceUnavailable, "busy")
	})
	resp, err := srv.Test(httptest.NewRequest("GET", "/", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get(fiber.HeaderRetryAfter); resp.StatusCode != 503 || got != "7" {
		t.Errorf("got %d with Retry-After %q, want 503 with 7", resp.StatusCode, got)
	}
}

// Every answer of guardServer's server carries helmet's headers as securityHeaders configures
// them, each once: a routed one, an unmatched one and one fasthttp could not read. A handler
// that sets one of them keeps its own value.
func TestSecurityHeadersAsHelmet(t *testing.T) {
	t.Parallel()
	// What helmet's middleware sets, with securityHeaders.
	ref := fiber.New()
	ref.Use(helmet.New(securityHeaders))
	ref.Get("/", func(*fiber.Ctx) error { return nil })
	var refCtx fasthttp.RequestCtx
	refCtx.Request.SetRequestURI("/")
	ref.Handler()(&refCtx)
	want := map[string]string{}
	for k, v := range refCtx.Response.Header.All() {
		if string(k) != fiber.HeaderContentType {
			want[string(k)] = string(v)
		}
	}
	if len(want) < 10 {
		t.Fatalf("helmet set %d headers: %v", len(want), want)
	}

	srv := fiber.New(serverConfig(DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil))))
	guardServer(srv.Server(), "")
	srv.Get("/", func(c *fiber.Ctx) error { return c.SendString("ok") })
	srv.Get("/own", func(c *fiber.Ctx) error {
		c.Set("Cross-Origin-Resource-Policy", "cross-origin")
		return nil
	})
	for _, tt := range []struct {
		name, req string
		status    int
		own       bool
	}{
		{"routed", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"own value", "GET /own HTTP/1.1\r\nHost: x\r\n\r\n", 200, true},
		{"unmatched", "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, false},
		{"unreadable", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", 400, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawRequest(t, srv, tt.req)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			for k, v := range want {
				if tt.own && k == "Cross-Origin-Resource-Policy" {
					v = "cross-origin"
				}
				if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s: got %q, want [%q]", k, got, v)
				}
			}
		})
	}
}

// rawRequest sends req, as written, to srv and returns the response.
func rawRequest(t *testing.T, srv *fiber.App, req string) *http.Response {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	t.Cleanup(func() { _ = ln.Close() })
	_ = srv.Handler() // builds the route tree, as Listener does
	go func() { _ = srv.Server().Serve(ln) }()
	conn, err := ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp
}

// A response given the security headers by copying them (securityHeader.apply) is, byte for
// byte but its Date, the response given them one by one, whatever fasthttp's server flags (the
// copy carries the flags a fresh response has, or, for NoDefaultDate, is not made) and
// whatever the request: keep-alive, a second request on the connection, HTTP/1.0, Connection:
// close.
func TestSecurityHeaderCopyAnswersAsSetting(t *testing.T) {
	t.Parallel()
	hsts := []byte("max-age=31536000")
	const requests = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + // keep-alive
		"GET /again HTTP/1.1\r\nHost: x\r\n\r\n" + // the connection's second request
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	for _, flags := range []struct{ noContentType, noDate, noNormalizing bool }{
		{}, {noContentType: true}, {noDate: true}, {noNormalizing: true}, {true, true, true},
	} {
		for _, reqs := range []string{requests, "GET / HTTP/1.0\r\n\r\n"} {
			answer := func(copied bool) string {
				t.Helper()
				fs := &fasthttp.Server{NoDefaultContentType: flags.noContentType, NoDefaultDate: flags.noDate,
					DisableHeaderNamesNormalizing: flags.noNormalizing}
				sh := newSecurityHeader(fs, hsts)
				fs.Handler = func(ctx *fasthttp.RequestCtx) {
					if copied {
						sh.apply(&ctx.Response.Header)
					} else {
						setSecurityFields(&ctx.Response.Header, hsts)
					}
					ctx.SetBodyString("ok")
				}
				ln := fasthttputil.NewInmemoryListener()
				defer ln.Close()
				go fs.Serve(ln) //nolint:errcheck // ends with the listener
				c, err := ln.Dial()
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write([]byte(reqs)); err != nil {
					t.Fatal(err)
				}
				var out strings.Builder
				br := bufio.NewReader(c)
				for range strings.Count(reqs, "GET ") {
					var resp fasthttp.Response
					if err := resp.Read(br); err != nil {
						t.Fatal(err)
					}
					if len(resp.Header.Peek(fiber.HeaderDate)) > 0 {
						out.WriteString("Date: (one)\n")
					}
					resp.Header.Del(fiber.HeaderDate) // the time it was written
					out.WriteString(resp.String() + "\n")
				}
				return out.String()
			}
			got, want := answer(true), answer(false)
			if got != want {
				t.Errorf("flags %+v, %q: copied\n%s\nwant, set one by one\n%s", flags, reqs, got, want)
			}
			if !strings.Contains(got, "Strict-Transport-Security: max-age=31536000") || !strings.Contains(got, "X-Content-Type-Options: nosniff") {
				t.Errorf("flags %+v: the copied answer lacks security headers:\n%s", flags, got)
			}
		}
	}
}
