package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber-template/sessions/app"
)

// wantSecurityHeaders fails the test unless resp carries the headers every response must.
func wantSecurityHeaders(t *testing.T, resp *http.Response, what string) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %s got %q, want %q", what, name, got, want)
		}
	}
}

// TestSmugglingShapesRefused sends, over raw connections, the request framings that let a proxy
// and this server disagree on where a request ends (request smuggling): each gets 400 with the
// security headers, and none reaches a handler (no request line and no login attempt in the
// log).
// A valid request sent last on the same server shows that the log would have said so.
func TestSmugglingShapesRefused(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	s := startServer(t, env, app.Hooks{})
	// Every shape carries a cookie: fasthttp's own message for a request it cannot read quotes
	// the request, and a script could read an HttpOnly cookie back from that.
	const secret = "Cookie: session=not-for-the-page\r\n"
	host := "Host: " + strings.TrimPrefix(s.URL, "http://") + "\r\n" + secret
	login := "POST /login HTTP/1.1\r\n" + host + "Content-Type: application/json\r\n"
	chunked := "2\r\n{}\r\n0\r\n\r\n"

	shapes := []struct{ name, req string }{
		{"duplicate Content-Length", login + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"},
		{"Transfer-Encoding and Content-Length", login + "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n" + chunked},
		{"Transfer-Encoding: xchunked", login + "Transfer-Encoding: xchunked\r\n\r\n" + chunked},
		{"Transfer-Encoding: chunked, identity", login + "Transfer-Encoding: chunked, identity\r\n\r\n" + chunked},
		{"Transfer-Encoding: gzip, chunked", login + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked},
		{"duplicate Transfer-Encoding", login + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"Transfer-Encoding on HTTP/1.0", "POST /login HTTP/1.0\r\n" + host + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked},
		{"no Host", "GET /healthz HTTP/1.1\r\n" + secret + "\r\n"},
		{"two Hosts", "GET /healthz HTTP/1.1\r\n" + host + "Host: example.com\r\n\r\n"},
	}
	for _, sh := range shapes {
		resp, body, err := dialRaw(t, s).tryExchange(sh.req)
		if err != nil {
			t.Errorf("%s: no answer (%v), want 400", sh.name, err)
			continue
		}
		t.Logf("%s: %d %q", sh.name, resp.StatusCode, body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: got %d %q, want 400", sh.name, resp.StatusCode, body)
		}
		wantSecurityHeaders(t, resp, sh.name)
		if strings.Contains(body, "not-for-the-page") {
			t.Errorf("%s: the answer quotes the request's cookie: %q", sh.name, body)
		}
	}
	if n := strings.Count(s.Log.String(), "msg=request "); n != 0 {
		t.Errorf("%d of the shapes reached the handlers:\n%s", n, s.Log.String())
	}
	if n := strings.Count(s.Log.String(), "msg=login "); n != 0 { // every attempt logs one line
		t.Errorf("the shapes made %d login attempts, want 0:\n%s", n, s.Log.String())
	}

	resp, _ := dialRaw(t, s).exchange(login + "Content-Length: 2\r\n\r\n{}")
	if resp.StatusCode != http.StatusBadRequest || strings.Count(s.Log.String(), "msg=request ") != 1 {
		t.Fatalf("a well-framed POST /login {}: got %d and log\n%s\nwant 400 and one request line", resp.StatusCode, s.Log.String())
	}
}

// TestFrameworkAnswersCarrySecurityHeaders: the answers Fiber and fasthttp write themselves,
// before any middleware (a method Fiber does not know, a request that cannot be read), carry
// the security headers, and Strict-Transport-Security goes on every answer whenever the cookie
// is Secure, with HSTS_MAX_AGE's max-age.
func TestFrameworkAnswersCarrySecurityHeaders(t *testing.T) {
	t.Parallel()
	dbURL, _ := withUser(t)
	for _, tt := range []struct {
		name, secure, maxAge, want string
	}{
		{"secure cookie, default max-age", "true", "", "max-age=31536000"},
		{"secure cookie, HSTS_MAX_AGE=2h", "true", "2h", "max-age=7200"},
		{"secure cookie, HSTS_MAX_AGE=0", "true", "0s", ""},
		{"plain cookie", "false", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv(dbURL)
			env["COOKIE_SECURE"] = tt.secure
			env["HSTS_MAX_AGE"] = tt.maxAge
			s := startServer(t, env, app.Hooks{})
			host := "Host: " + strings.TrimPrefix(s.URL, "http://") + "\r\n"
			for _, r := range []struct {
				what, req string
				status    int
			}{
				{"a routed answer", "GET /healthz HTTP/1.1\r\n" + host + "\r\n", 200},
				{"an unmatched path", "GET /nope HTTP/1.1\r\n" + host + "\r\n", 404},
				{"a method Fiber does not know", "BREW /healthz HTTP/1.1\r\n" + host + "\r\n", 400},
				{"a request that cannot be read", "GET /healthz HTTP/1.1\r\n" + host + "Bad Header\r\n\r\n", 400},
				{"headers too large", "GET /healthz HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
			} {
				resp, body := dialRaw(t, s).exchange(r.req)
				if resp.StatusCode != r.status {
					t.Errorf("%s: got %d %q, want %d", r.what, resp.StatusCode, body, r.status)
				}
				wantSecurityHeaders(t, resp, r.what)
				if got := resp.Header.Get("Strict-Transport-Security"); got != tt.want {
					t.Errorf("%s: Strict-Transport-Security %q, want %q", r.what, got, tt.want)
				}
			}
		})
	}
}
