package tests

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// Issue 7: the login and session surface under attack.

func TestCrossSiteRequestsRefused(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	s := startServer(t, env, app.Hooks{})
	c := newClient(t)
	mustLogin(t, c, s, email, password)

	// What a page on another site can send with the visitor's cookie: a form post or a fetch
	// with a "simple" content type, which needs no CORS preflight.
	for _, path := range []string{"/logout", "/logout/all"} {
		for _, tt := range []struct {
			name, contentType, body string
			headers                 map[string]string
		}{
			{"old browser, text/plain", "text/plain", "x", map[string]string{"Origin": "https://evil.example"}},
			{"old browser, form", "application/x-www-form-urlencoded", "a=b", map[string]string{"Origin": "https://evil.example"}},
			{"old browser, null origin", "application/x-www-form-urlencoded", "a=b", map[string]string{"Origin": "null"}},
			{"cross-site", "text/plain", "x", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
			{"same-site", "text/plain", "x", map[string]string{"Origin": "https://sub.example", "Sec-Fetch-Site": "same-site"}},
		} {
			req, err := http.NewRequest("POST", s.URL+path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tt.contentType)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s, %s: got %d %s, want 403", path, tt.name, resp.StatusCode, body)
			}
		}
	}
	// Still logged in, on the server and in the database.
	mustMe(t, c, s, http.StatusOK)
	if n := sessionRows(t, dbURL); n != 1 {
		t.Fatalf("sessions rows after the cross-site posts: got %d, want 1", n)
	}

	// The same site's page, and a client that sends neither header, still log out.
	req, _ := http.NewRequest("POST", s.URL+"/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", s.URL)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != http.StatusNoContent {
		t.Errorf("same-origin logout: got %d, want 204", resp.StatusCode)
	}
	mustLogin(t, c, s, email, password)
	if status, body := do(t, c, "POST", s.URL+"/logout/all", "", ""); status != http.StatusNoContent {
		t.Errorf("logout everywhere without Origin or Sec-Fetch-Site: got %d %s, want 204", status, body)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	s := startServer(t, env, app.Hooks{})
	c := newClient(t)
	for _, tt := range []struct {
		method, path, contentType, body string
		status                          int
	}{
		{"POST", "/login", "application/json", loginBody(email, password), 200},
		{"GET", "/me", "", "", 200},
		{"GET", "/healthz", "", "", 200},
		{"GET", "/nope", "", "", 404},
		{"POST", "/login", "text/plain", "x", 415},
		{"POST", "/logout", "", "", 204},
		{"GET", "/me", "", "", 401},
	} {
		resp := doResp(t, c, tt.method, s.URL+tt.path, tt.contentType, tt.body)
		readBody(t, resp)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: got %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
		for name, want := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
			"Referrer-Policy":        "no-referrer",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("%s %s: %s got %q, want %q", tt.method, tt.path, name, got, want)
			}
		}
	}
}

func TestMaxLifetime(t *testing.T) {
	t.Parallel()
	dbURL, env, clk := slidingFixture(t) // idle 1h, touch 1m
	env["SESSION_MAX_LIFETIME"] = "2h"
	a := startServer(t, env, app.Hooks{Now: clk.Now})
	b := startServer(t, env, app.Hooks{Now: clk.Now})
	c := newClient(t)
	loginAt := clk.Now().Unix()
	mustLogin(t, c, a, email, password)
	rowExpiry := func() int64 {
		t.Helper()
		return pgtest.Count(t, pgtest.Pool(t, dbURL), "SELECT max(e) FROM sessions")
	}
	if got, want := rowExpiry(), loginAt+3600; got != want {
		t.Errorf("row expiry after login: got %d, want login + 1h = %d", got, want)
	}

	// Used every 50 minutes, the session slides, but the refresh at 1h40m is cut short to the
	// 20 minutes left: in the row and in the cookie.
	clk.Advance(50 * time.Minute)
	mustMe(t, c, a, http.StatusOK)
	clk.Advance(50 * time.Minute)
	resp := doResp(t, c, "GET", a.URL+"/me", "", "")
	readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /me at 1h40m: got %d, want 200", resp.StatusCode)
	}
	if ck := findCookie(t, resp, "session"); ck.MaxAge > 20*60 || ck.MaxAge < 20*60-1 {
		t.Errorf("cookie Max-Age refreshed at 1h40m: got %d, want 1200 (the lifetime left)", ck.MaxAge)
	}
	if got, want := rowExpiry(), loginAt+7200; got != want {
		t.Errorf("row expiry after the refresh at 1h40m: got %d, want login + 2h = %d", got, want)
	}

	// Right up to the end it lives, on both instances; then it is refused on both.
	clk.Advance(20*time.Minute - time.Second)
	mustMe(t, c, a, http.StatusOK)
	mustMe(t, c, b, http.StatusOK)
	if got, want := rowExpiry(), loginAt+7200; got != want {
		t.Errorf("row expiry at 2h-1s: got %d, want it unmoved at %d", got, want)
	}
	clk.Advance(time.Second)
	mustMe(t, c, a, http.StatusUnauthorized)
	mustMe(t, c, b, http.StatusUnauthorized)
}

// The guard counts the lifetime from the login time in the session, not from the row's
// expiry: lowering SESSION_MAX_LIFETIME ends sessions made under the old setting too.
func TestMaxLifetimeLowered(t *testing.T) {
	t.Parallel()
	_, env, clk := slidingFixture(t) // idle 1h
	s := startServer(t, env, app.Hooks{Now: clk.Now})
	c := newClient(t)
	mustLogin(t, c, s, email, password)
	s.Stop()

	env["SESSION_MAX_LIFETIME"] = "10m"
	s = startServer(t, env, app.Hooks{Now: clk.Now})
	clk.Advance(9 * time.Minute)
	mustMe(t, c, s, http.StatusOK)
	clk.Advance(time.Minute) // the row still has 50 minutes
	mustMe(t, c, s, http.StatusUnauthorized)
}

// Cookies that the server could not have issued never reach the session store: neither
// malformed ones nor well-formed random ids. Measured in statements sent to PostgreSQL, with
// the memory tier off so that nothing could hide a lookup.
func TestCookieSprayCostsNoQuery(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["SESSION_CACHE_CAPACITY"] = "0"
	s, st := startCounted(t, env, app.Hooks{Config: noSweep})
	c := newClient(t)
	mustLogin(t, c, s, email, password)
	genuine := sessionCookie(t, c, s)

	// Tracer check: with no memory tier, a real session costs one lookup per request.
	mark := st.Mark()
	mustMe(t, c, s, http.StatusOK)
	if sqls := sessionStatementsSince(st, mark); len(sqls) != 1 {
		t.Fatalf("GET /me with a real session and no memory tier: got %d statements on the sessions table, want 1: %q", len(sqls), sqls)
	}

	const spray, workers = 2000, 16
	altered := "B"
	if genuine[0] == 'B' {
		altered = "C"
	}
	altered += genuine[1:]
	forged := []func() string{
		func() string { return rand.Text() + rand.Text() },                  // right length and alphabet
		func() string { return altered },                                    // a real id, one character changed
		func() string { return rand.Text() },                                // the length of an id before signing
		func() string { return strings.Repeat("A", 3500) },                  // a 3.5 KB cookie
		func() string { return strings.ToLower(rand.Text() + rand.Text()) }, // wrong alphabet
	}
	mark = st.Mark()
	start := time.Now()
	var wg sync.WaitGroup
	var failed sync.Map
	for w := range workers {
		wg.Go(func() {
			for i := w; i < spray; i += workers {
				id := forged[i%len(forged)]()
				resp, err := withCookie(id).Get(s.URL + "/me")
				if err != nil {
					failed.Store(id, err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					failed.Store(id, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	failed.Range(func(id, got any) bool {
		t.Errorf("GET /me with forged cookie %.40q: got %v, want 401", id, got)
		return true
	})
	n, sqls := st.Since(mark)
	t.Logf("%d requests with forged session cookies in %v: %d statements", spray, elapsed.Round(time.Millisecond), n)
	if n != 0 {
		t.Errorf("forged cookies: got %d statements, want 0; the first: %q", n, sqls[:min(n, 3)])
	}

	// A login that carries a forged cookie costs what one without a cookie costs.
	mark = st.Mark()
	mustLogin(t, newClient(t), s, email, password)
	plain, _ := st.Since(mark)
	mark = st.Mark()
	mustLogin(t, withCookieJar(t, s, rand.Text()+rand.Text()), s, email, password)
	if withForged, sqls := st.Since(mark); withForged != plain {
		t.Errorf("login with a forged cookie: got %d statements, want %d as without: %q", withForged, plain, sqls)
	}
}

func TestHostileLoginBodies(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	s := startServer(t, env, app.Hooks{})
	for _, tt := range []struct {
		name, body string
		want       int
	}{
		{"NUL in the email", `{"email":"a\u0000@example.com","password":"x"}`, 400},
		{"NUL in the password", `{"email":"ada@example.com","password":"correct horse\u0000"}`, 400},
		{"field names in other cases", `{"EMAIL":"ada@example.com","PassWord":"correct horse battery staple"}`, 400},
		{"unknown field", `{"email":"ada@example.com","password":"correct horse battery staple","admin":true}`, 400},
		{"repeated field", `{"email":"ada@example.com","password":"x","password":"correct horse battery staple"}`, 400},
		{"trailing data", loginBody(email, password) + `{}`, 400},
		{"invalid UTF-8", "{\"email\":\"\xff@example.com\",\"password\":\"x\"}", 401},
		{"lone surrogate", `{"email":"\ud800@example.com","password":"x"}`, 401},
	} {
		status, body := do(t, http.DefaultClient, "POST", s.URL+"/login", "application/json", tt.body)
		if status != tt.want {
			t.Errorf("%s: got %d %s, want %d", tt.name, status, body, tt.want)
		}
	}
	if n := sessionRows(t, dbURL); n != 0 {
		t.Errorf("sessions rows after hostile logins: got %d, want 0", n)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	env := baseEnv(dbURL)
	env["BODY_LIMIT"] = "8192"
	s := startServer(t, env, app.Hooks{})
	for _, tt := range []struct {
		size int
		want int
	}{
		{8192, http.StatusUnauthorized}, // through to the guard
		{8193, http.StatusRequestEntityTooLarge},
		{16 << 10, http.StatusRequestEntityTooLarge},
	} {
		resp := rawPost(t, s, "/logout", tt.size)
		if body := readBody(t, resp); resp.StatusCode != tt.want {
			t.Errorf("POST /logout with a %d-byte body: got %d %s, want %d", tt.size, resp.StatusCode, body, tt.want)
		}
		// Answered before any middleware ran, yet with the security headers.
		if got := resp.Header.Get("X-Content-Type-Options") + " " + resp.Header.Get("X-Frame-Options"); got != "nosniff DENY" {
			t.Errorf("POST /logout with a %d-byte body: got X-Content-Type-Options and X-Frame-Options %q, want nosniff DENY", tt.size, got)
		}
	}
}

// rawPost sends a POST of size bytes over a connection of its own, and reads the answer even
// when the server sends it before the body (over the limit, on seeing Content-Length) and
// closes the connection.
func rawPost(t *testing.T, s *server, path string, size int) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: %s\r\n\r\n",
		path, strconv.Itoa(size))
	go func() { _, _ = conn.Write([]byte(strings.Repeat("x", size))) }() // may fail once the server closes
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Every answer of a route behind the guard carries Cache-Control: no-store, whatever its
// handler sets, so that no cache along the way keeps a user's data; so does the login's.
func TestGuardedAnswersAreNotStored(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	s := startServer(t, env, app.Hooks{})
	c := newClient(t)
	resp := doResp(t, c, "POST", s.URL+"/login", "application/json", loginBody(email, password))
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("login: %d, Cache-Control %q; want 200, no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	for _, path := range []string{"/me", "/sessions"} {
		resp := doResp(t, c, "GET", s.URL+path, "", "")
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d, Cache-Control %q; want 200, no-store", path, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
}
