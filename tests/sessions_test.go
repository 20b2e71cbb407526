package tests

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/internal/testenv"

	"github.com/gofiber-template/sessions/internal/testclock"
)

const (
	email    = "ada@example.com"
	password = "correct horse battery staple"
)

// notifyWithin is how soon every instance must refuse a session ended on another.
const notifyWithin = time.Second

func TestLoginMeLogout(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	mustCreateUser(t, dbURL, "  Ada@Example.COM ", password) // stored normalised
	s := startServer(t, baseEnv(dbURL), app.Hooks{})
	c := newClient(t)

	mustMe(t, c, s, http.StatusUnauthorized)

	resp := doResp(t, c, "POST", s.URL+"/login", "application/json", loginBody("ADA@example.com", password))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: got %d %s, want 200", resp.StatusCode, body)
	}
	if u := decodeUser(t, body); u.ID == 0 || u.Email != "ada@example.com" {
		t.Errorf("login body: got %s, want the user's id and email ada@example.com", body)
	}
	ck := findCookie(t, resp, "session")
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure {
		t.Errorf("session cookie: got HttpOnly=%v SameSite=%v Path=%q Secure=%v, want HttpOnly, Lax, /, not Secure (COOKIE_SECURE=false)",
			ck.HttpOnly, ck.SameSite, ck.Path, ck.Secure)
	}
	if want := int((7 * 24 * time.Hour).Seconds()); ck.MaxAge != want {
		t.Errorf("session cookie Max-Age: got %d, want %d (SESSION_IDLE_TIMEOUT)", ck.MaxAge, want)
	}

	status, body := do(t, c, "GET", s.URL+"/me", "", "")
	if status != http.StatusOK || decodeUser(t, body).Email != "ada@example.com" {
		t.Fatalf("GET /me: got %d %s, want 200 and the email ada@example.com", status, body)
	}
	if n := sessionRows(t, dbURL); n != 1 {
		t.Fatalf("sessions rows after login: got %d, want 1", n)
	}

	sid := sessionCookie(t, c, s)
	resp = doResp(t, c, "POST", s.URL+"/logout", "", "")
	readBody(t, resp)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: got %d, want 204", resp.StatusCode)
	}
	if ck := findCookie(t, resp, "session"); ck.Value != "" || !ck.Expires.Before(time.Now()) {
		t.Errorf("logout cookie: got value %q expiring %v, want it empty and expired", ck.Value, ck.Expires)
	}
	if got := sessionCookie(t, c, s); got != "" {
		t.Errorf("jar after logout: got session cookie %q, want none", got)
	}
	mustMe(t, c, s, http.StatusUnauthorized)
	mustMe(t, withCookie(sid), s, http.StatusUnauthorized) // a copy kept from before the logout
	if n := sessionRows(t, dbURL); n != 0 {
		t.Errorf("sessions rows after logout: got %d, want 0", n)
	}
	status, _ = do(t, c, "POST", s.URL+"/logout", "", "")
	if status != http.StatusUnauthorized {
		t.Errorf("logout without a session: got %d, want 401", status)
	}
}

func TestLoginChangesSessionID(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	mustCreateUser(t, dbURL, "eve@example.com", password)
	s := startServer(t, env, app.Hooks{})

	// Eve logs in, then plants her session id in Ada's browser (session fixation).
	eve := newClient(t)
	mustLogin(t, eve, s, "eve@example.com", password)
	planted := sessionCookie(t, eve, s)
	ada := withCookieJar(t, s, planted)

	u := mustLogin(t, ada, s, email, password)
	got := sessionCookie(t, ada, s)
	if got == "" || got == planted {
		t.Fatalf("session id after login: got %q, want a new one (planted %q)", got, planted)
	}
	if u.Email != email {
		t.Errorf("login: got user %q, want %q", u.Email, email)
	}
	// The planted session, Eve's, was replaced, not upgraded: it is gone.
	mustMe(t, eve, s, http.StatusUnauthorized)

	// Logging in again also starts a new session and ends the previous one.
	mustLogin(t, ada, s, email, password)
	if again := sessionCookie(t, ada, s); again == got {
		t.Errorf("session id after a second login: got the same %q, want a new one", again)
	}
	mustMe(t, withCookie(got), s, http.StatusUnauthorized)
	mustMe(t, ada, s, http.StatusOK)
}

// TestLoginNeverReusesAPlantedID: a correctly signed id that names no live session (Eve logged
// out of it, or let it expire) is as worthless as any other planted id: the login starts under
// a new id, answers 200, and Eve's copy of the old id gets nothing.
func TestLoginNeverReusesAPlantedID(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	mustCreateUser(t, dbURL, "eve@example.com", password)
	env["SESSION_IDLE_TIMEOUT"] = "1h"
	clk := newClock()
	s := startServer(t, env, app.Hooks{Now: clk.Now})

	eve := newClient(t)
	mustLogin(t, eve, s, "eve@example.com", password)
	loggedOut := sessionCookie(t, eve, s)
	if status, body := do(t, eve, "POST", s.URL+"/logout", "", ""); status != http.StatusNoContent {
		t.Fatalf("eve's logout: got %d %s", status, body)
	}
	mustLogin(t, eve, s, "eve@example.com", password)
	expired := sessionCookie(t, eve, s)
	clk.Advance(time.Hour + time.Minute) // eve's session expires; its row is still there
	for what, planted := range map[string]string{"logged out": loggedOut, "expired": expired} {
		ada := withCookieJar(t, s, planted)
		mustLogin(t, ada, s, email, password)
		if got := sessionCookie(t, ada, s); got == "" || got == planted {
			t.Errorf("%s id planted: session id after login %q, want a new one", what, got)
		}
		if status, body := do(t, withCookie(planted), "GET", s.URL+"/me", "", ""); status != http.StatusUnauthorized {
			t.Errorf("%s id planted: the planted id after Ada's login got %d %s, want 401", what, status, body)
		}
	}
}

func TestCookieSecure(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	delete(env, "COOKIE_SECURE") // the default
	s := startServer(t, env, app.Hooks{})

	resp := doResp(t, http.DefaultClient, "POST", s.URL+"/login", "application/json", loginBody(email, password))
	readBody(t, resp)
	// The __Host- prefix: browsers take the cookie only from HTTPS, with Path=/ and no Domain.
	if ck := findCookie(t, resp, "__Host-session"); !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("session cookie by default: got Secure=%v HttpOnly=%v Path=%q Domain=%q, want Secure, HttpOnly, / and none",
			ck.Secure, ck.HttpOnly, ck.Path, ck.Domain)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	s := startServer(t, env, app.Hooks{})

	type answer struct {
		status int
		body   string
		cookie string
	}
	try := func(email, password string) answer {
		resp := doResp(t, http.DefaultClient, "POST", s.URL+"/login", "application/json", loginBody(email, password))
		return answer{resp.StatusCode, readBody(t, resp), resp.Header.Get("Set-Cookie")}
	}
	wrong := try(email, "wrong password")
	unknown := try("nobody@example.com", "wrong password")
	if wrong.status != http.StatusUnauthorized || wrong != unknown {
		t.Errorf("wrong password: got %+v; unknown email: got %+v; want the same 401 with no cookie", wrong, unknown)
	}
	if wrong.cookie != "" {
		t.Errorf("failed login set a cookie: %q", wrong.cookie)
	}
	if n := sessionRows(t, dbURL); n != 0 {
		t.Errorf("sessions rows after failed logins: got %d, want 0", n)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	s := startServer(t, env, app.Hooks{})

	tests := []struct {
		name, method, path, contentType, body string
		want                                  int
	}{
		{"malformed JSON", "POST", "/login", "application/json", `{"email":`, 400},
		{"JSON array", "POST", "/login", "application/json", `["a","b"]`, 400},
		{"wrong types", "POST", "/login", "application/json", `{"email":1,"password":2}`, 400},
		{"missing password", "POST", "/login", "application/json", `{"email":"ada@example.com"}`, 400},
		{"empty body", "POST", "/login", "application/json", ``, 400},
		{"form body", "POST", "/login", "application/x-www-form-urlencoded", "email=a&password=b", 415},
		{"no content type", "POST", "/login", "", loginBody(email, password), 415},
		{"over the login limit", "POST", "/login", "application/json", loginBody(email, strings.Repeat("x", 5000)), 413},
		{"GET login", "GET", "/login", "", "", 405},
		{"unknown path", "GET", "/nope", "", "", 404},
		{"me without cookie", "GET", "/me", "", "", 401},
		{"logout all without cookie", "POST", "/logout/all", "", "", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, http.DefaultClient, tt.method, s.URL+tt.path, tt.contentType, tt.body)
			if status != tt.want {
				t.Errorf("got %d %s, want %d", status, body, tt.want)
			}
			if !strings.HasPrefix(body, `{"error":`) {
				t.Errorf("body: got %q, want {\"error\": ...}", body)
			}
		})
	}

	// Over the server's limit (BODY_LIMIT): the server answers on seeing Content-Length, before
	// the body, and closes the connection; a raw connection reads that answer without racing it.
	t.Run("over the server limit", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", 2<<20)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if body := readBody(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d %s, want 413", resp.StatusCode, body)
		}
	})

	for _, value := range []string{"garbage", strings.Repeat("a", 2000), "%00%ff", ""} {
		t.Run("me with cookie "+fmt.Sprintf("%.10q", value), func(t *testing.T) {
			mustMe(t, withCookie(value), s, http.StatusUnauthorized)
		})
	}
	if n := sessionRows(t, dbURL); n != 0 {
		t.Errorf("sessions rows after bad requests: got %d, want 0", n)
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	s := startServer(t, baseEnv(pgtest.NewURL(t)), app.Hooks{})
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := do(t, http.DefaultClient, "GET", s.URL+path, "", ""); status != http.StatusOK {
			t.Errorf("GET %s: got %d %s, want 200", path, status, body)
		}
	}
}

func TestSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	c := newClient(t)

	first := startServer(t, env, app.Hooks{})
	mustLogin(t, c, first, email, password)
	mustMe(t, c, first, http.StatusOK)
	first.Stop()

	second := startServer(t, env, app.Hooks{})
	mustMe(t, c, second, http.StatusOK)
}

func TestTwoServersShareSessions(t *testing.T) {
	t.Parallel()
	_, a, b := twoServers(t)
	c := newClient(t)

	mustLogin(t, c, a, email, password)
	mustMe(t, c, b, http.StatusOK)
	mustMe(t, c, b, http.StatusOK) // now from B's memory
	if hits := b.Store.Stats().Hits; hits == 0 {
		t.Fatalf("B's memory hits: got 0, want the second /me served from memory")
	}

	copyOfCookie := withCookie(sessionCookie(t, c, a))
	if status, _ := do(t, c, "POST", a.URL+"/logout", "", ""); status != http.StatusNoContent {
		t.Fatalf("logout on A: got %d, want 204", status)
	}
	took := eventually(t, copyOfCookie, b, http.StatusUnauthorized, notifyWithin)
	t.Logf("B refused the session %v after the logout on A", took)
	mustMe(t, copyOfCookie, a, http.StatusUnauthorized)
}

func TestLogoutAllEndsEverySession(t *testing.T) {
	t.Parallel()
	dbURL, a, b := twoServers(t)
	mustCreateUser(t, dbURL, "bob@example.com", password)

	laptop, phone, tablet, bob := newClient(t), newClient(t), newClient(t), newClient(t)
	mustLogin(t, laptop, a, email, password)
	mustLogin(t, phone, b, email, password)
	mustLogin(t, tablet, a, email, password)
	mustLogin(t, bob, b, "bob@example.com", password)
	for _, c := range []*http.Client{laptop, phone, tablet, bob} {
		mustMe(t, c, a, http.StatusOK) // every session in both memories
		mustMe(t, c, b, http.StatusOK)
	}

	resp := doResp(t, laptop, "POST", a.URL+"/logout/all", "", "")
	readBody(t, resp)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout/all: got %d, want 204", resp.StatusCode)
	}
	if got := sessionCookie(t, laptop, a); got != "" {
		t.Errorf("jar after logout/all: got session cookie %q, want none", got)
	}
	mustMe(t, tablet, a, http.StatusUnauthorized) // same instance: at once
	eventually(t, phone, b, http.StatusUnauthorized, notifyWithin)
	eventually(t, tablet, b, http.StatusUnauthorized, notifyWithin)
	mustMe(t, phone, a, http.StatusUnauthorized)
	mustMe(t, bob, a, http.StatusOK) // other users keep theirs
	mustMe(t, bob, b, http.StatusOK)
}

func TestPasswordChangeEndsSessions(t *testing.T) {
	t.Parallel()
	dbURL, a, b := twoServers(t)
	onA, onB := newClient(t), newClient(t)
	mustLogin(t, onA, a, email, password)
	mustLogin(t, onB, b, email, password)
	mustMe(t, onA, a, http.StatusOK)
	mustMe(t, onB, b, http.StatusOK)

	const newPassword = "violet harbour engines hum at dusk"
	out, err := runCLI(t, baseEnv(dbURL), newPassword+"\n", "user", "passwd", email)
	if err != nil {
		t.Fatalf("user passwd: %v", err)
	}
	if !strings.Contains(out, "ended 2 sessions") {
		t.Errorf("user passwd output: got %q, want it to say it ended 2 sessions", out)
	}
	eventually(t, onA, a, http.StatusUnauthorized, notifyWithin)
	eventually(t, onB, b, http.StatusUnauthorized, notifyWithin)

	if status, _ := do(t, onA, "POST", a.URL+"/login", "application/json", loginBody(email, password)); status != http.StatusUnauthorized {
		t.Errorf("login with the old password: got %d, want 401", status)
	}
	mustLogin(t, onA, a, email, newPassword)
	mustMe(t, onA, b, http.StatusOK)
}

func TestExpiredSessionRefused(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["SESSION_IDLE_TIMEOUT"] = "1h"
	clk := newClock()
	s := startServer(t, env, app.Hooks{Now: clk.Now})
	c := newClient(t)

	mustLogin(t, c, s, email, password)
	clk.Advance(30 * time.Second) // within the touch interval (1m): the expiry stays put
	mustMe(t, c, s, http.StatusOK)
	clk.Advance(time.Hour - 30*time.Second) // exactly the idle timeout since login
	mustMe(t, c, s, http.StatusUnauthorized)

	// A restarted server, reading the row from Postgres, refuses it too.
	s.Stop()
	s = startServer(t, env, app.Hooks{Now: clk.Now})
	mustMe(t, c, s, http.StatusUnauthorized)
}

func TestSessionSlides(t *testing.T) {
	t.Parallel()
	_, env, clk := slidingFixture(t)
	s := startServer(t, env, app.Hooks{Now: clk.Now})
	c := newClient(t)
	mustLogin(t, c, s, email, password)

	// Within the touch interval a request changes nothing: no write, no new cookie.
	clk.Advance(59 * time.Second)
	writes := s.Store.Stats().Touches
	resp := doResp(t, c, "GET", s.URL+"/me", "", "")
	readBody(t, resp)
	if got := resp.Header.Values("Set-Cookie"); resp.StatusCode != http.StatusOK || len(got) != 0 {
		t.Fatalf("GET /me within the touch interval: got %d with Set-Cookie %q, want 200 without", resp.StatusCode, got)
	}
	if got := s.Store.Stats().Touches - writes; got != 0 {
		t.Errorf("refreshes within the touch interval: got %d, want 0", got)
	}

	// The first request after it moves the expiry: one write, and the cookie again lives an idle
	// timeout from the start of the current touch interval (every instance agrees on it).
	clk.Advance(2 * time.Second)
	resp = doResp(t, c, "GET", s.URL+"/me", "", "")
	readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /me after the touch interval: got %d, want 200", resp.StatusCode)
	}
	if ck := findCookie(t, resp, "session"); ck.MaxAge < 3600-60 || ck.MaxAge > 3600 || ck.Value != sessionCookie(t, c, s) {
		t.Errorf("refreshed cookie: got Max-Age %d, want 3540 to 3600 and the same session id", ck.MaxAge)
	}
	if got := s.Store.Stats().Touches - writes; got != 1 {
		t.Errorf("refreshes: got %d, want 1", got)
	}

	// The refresh moved the row's expiry too: past the hour since login, the session lives on,
	// also for a restarted server that reads it from Postgres.
	clk.Advance(time.Hour - 30*time.Second) // 1h31s after login, 59m29s after the refresh
	s.Stop()
	s = startServer(t, env, app.Hooks{Now: clk.Now})
	mustMe(t, c, s, http.StatusOK) // refreshes again, at 1h31s
	clk.Advance(time.Hour + time.Second)
	mustMe(t, c, s, http.StatusUnauthorized)
}

func TestRefreshDoesNotResurrectLoggedOutSession(t *testing.T) {
	t.Parallel()
	dbURL, env, clk := slidingFixture(t)
	a := startServer(t, env, app.Hooks{Now: clk.Now})
	// B's listener goes through a proxy that, once B holds the session, delivers late: A's
	// logout is a notification still on its way when B refreshes the session (within B's lease,
	// which the late pings have not yet let lapse).
	proxy := pgtest.NewProxy(t, dbURL)
	late := maps.Clone(env)
	late["LISTEN_DATABASE_URL"] = proxy.URL(dbURL)
	b := startServer(t, late, app.Hooks{Now: clk.Now})

	c := newClient(t)
	mustLogin(t, c, a, email, password)
	mustMe(t, c, b, http.StatusOK) // B holds the session in memory
	proxy.Delay(time.Minute)
	copyOfCookie := withCookie(sessionCookie(t, c, a))
	if status, _ := do(t, c, "POST", a.URL+"/logout", "", ""); status != http.StatusNoContent {
		t.Fatalf("logout on A: got %d, want 204", status)
	}

	clk.Advance(61 * time.Second) // B's next request refreshes the session
	writes := b.Store.Stats().Touches
	mustMe(t, copyOfCookie, b, http.StatusUnauthorized)
	if got := b.Store.Stats().Touches - writes; got != 1 {
		t.Errorf("B's refreshes: got %d, want 1 (refused)", got)
	}
	if n := sessionRows(t, dbURL); n != 0 {
		t.Errorf("sessions rows after the refresh: got %d, want 0", n)
	}
}

func TestTouchIntervalBoundsWrites(t *testing.T) {
	t.Parallel()
	_, env, clk := slidingFixture(t)
	s := startServer(t, env, app.Hooks{Now: clk.Now})
	c := newClient(t)
	mustLogin(t, c, s, email, password)

	const intervals, perStep = 4, 25
	before := s.Store.Stats().Touches
	for i := range intervals {
		// Three steps per interval, 25 requests each: 75 requests per interval.
		for _, step := range []time.Duration{0, 20 * time.Second, 20 * time.Second} {
			clk.Advance(step)
			for range perStep {
				mustMe(t, c, s, http.StatusOK)
			}
		}
		if got, want := s.Store.Stats().Touches-before, uint64(i); got != want {
			t.Fatalf("refreshes after %d intervals of 75 requests: got %d, want %d (one per interval after the first)", i+1, got, want)
		}
		clk.Advance(21 * time.Second) // to the next interval: 61 s after the previous refresh
	}
	writes := s.Store.Stats().Touches - before
	t.Logf("%d requests over %d touch intervals: %d refreshes", intervals*3*perStep, intervals, writes)
}

func TestSmallMemoryTierKeepsEverySession(t *testing.T) {
	testenv.Slow(t) // a hundred logins
	t.Parallel()
	_, env := withUser(t)
	env["SESSION_CACHE_CAPACITY"] = "10"
	s := startServer(t, env, app.Hooks{})

	clients := make([]*http.Client, 100)
	for i := range clients {
		clients[i] = newClient(t)
		mustLogin(t, clients[i], s, email, password)
	}
	for round := range 2 {
		for i, c := range clients {
			if got := me(t, c, s); got != http.StatusOK {
				t.Fatalf("round %d, session %d: GET /me got %d, want 200", round, i, got)
			}
		}
	}
	st := s.Store.Stats()
	if st.Entries > 10 || st.Evictions == 0 {
		t.Errorf("memory tier: got %d entries and %d evictions, want at most 10 entries and some evictions", st.Entries, st.Evictions)
	}
}

// TestWarmGuardSendsNoSessionStatement checks the guard's promise: a request on a warm session
// sends nothing to the sessions table, whatever the handler behind the guard reads besides.
func TestWarmGuardSendsNoSessionStatement(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	// The periodic sweep of expired rows is the one statement an idle server sends; keep it out
	// of the measurement.
	s, st := startCounted(t, env, app.Hooks{Config: noSweep})
	c := newClient(t)

	mark := st.Mark()
	mustLogin(t, c, s, email, password)
	if n, _ := st.Since(mark); n == 0 {
		t.Fatal("login sent no statement: the tracer is not installed")
	}
	mustMe(t, c, s, http.StatusOK) // warms memory if login did not

	const requests = 200
	mark = st.Mark()
	for range requests {
		mustMe(t, c, s, http.StatusOK)
	}
	sqls := sessionStatementsSince(st, mark)
	t.Logf("%d warm GET /me sent %d statements to the sessions table", requests, len(sqls))
	if len(sqls) != 0 {
		t.Errorf("warm GET /me: got %d statements on the sessions table over %d requests, want 0: %q", len(sqls), requests, sqls)
	}
}

// TestForgedCookieNeverHandedAWarmSession checks the guard's promise whatever memory holds: a
// real session's value planted in the store under a key of the right length and alphabet that
// no key signed, and so warm in memory, is refused, before and after the store has read it,
// with no statement to the sessions table. Memory's entry is trusted without the signature
// check only for an id whose signature the guard has checked for that very value.
func TestForgedCookieNeverHandedAWarmSession(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	s, st := startCounted(t, env, app.Hooks{Config: noSweep})
	c := newClient(t)
	mustLogin(t, c, s, email, password)
	mustMe(t, c, s, http.StatusOK) // the genuine id checked, its value marked for it
	genuine := sessionCookie(t, c, s)
	val, err := s.Store.Get(genuine)
	if err != nil || val == nil {
		t.Fatalf("the genuine session's value: %q, %v", val, err)
	}
	mac := []byte(genuine[26:])
	mac[len(mac)-1] = "AB"[mac[len(mac)-1]%2] // A for B, B for A and for any other: always a change
	for what, forged := range map[string]string{
		"the genuine random part, another MAC": genuine[:26] + string(mac),
		"made up":                              rand.Text() + rand.Text(),
	} {
		if len(forged) != 52 || forged == genuine {
			t.Fatalf("%s: %q is not a forgery of the right shape", what, forged)
		}
		if err := s.Store.Set(forged, val, time.Hour); err != nil { // decoded as it is stored
			t.Fatal(err)
		}
		for _, read := range []bool{false, true} {
			if read {
				if d, _, err := s.Store.GetDecoded(context.Background(), forged); err != nil || d == nil {
					t.Fatalf("%s: GetDecoded of the planted session: %v, %v", what, d, err)
				}
			}
			if _, _, ok := s.Store.Cached(forged); !ok {
				t.Fatalf("%s (read %v): the planted session is not warm in memory", what, read)
			}
			const requests = 5
			hits, mark := s.Store.Stats().Hits, st.Mark()
			for range requests {
				if status, body := do(t, withCookie(forged), "GET", s.URL+"/me", "", ""); status != http.StatusUnauthorized {
					t.Fatalf("%s (read %v): GET /me got %d %s, want 401", what, read, status, body)
				}
			}
			if sqls := sessionStatementsSince(st, mark); len(sqls) != 0 {
				t.Errorf("%s (read %v): %d statements on the sessions table, want 0: %q", what, read, len(sqls), sqls)
			}
			// Each request's one memory probe found the planted entry: it was warm throughout.
			if got := s.Store.Stats().Hits - hits; got != requests {
				t.Fatalf("%s (read %v): %d memory hits for %d requests, want one each", what, read, got, requests)
			}
		}
	}
	mustMe(t, c, s, http.StatusOK)
}

// TestVerifiedSessionServesAfterRewrite: a warm session serves request after request without a
// statement on the sessions table; rewritten under the same id (a new value, which the guard
// has not checked yet), it serves the new value, still without one.
func TestVerifiedSessionServesAfterRewrite(t *testing.T) {
	t.Parallel()
	dbURL, env, clk := slidingFixture(t) // the clock stands still: no refresh comes due
	mustCreateUser(t, dbURL, "eve@example.com", password)
	s, st := startCounted(t, env, app.Hooks{Now: clk.Now, Config: noSweep})
	ada, eve := newClient(t), newClient(t)
	mustLogin(t, ada, s, email, password)
	mustLogin(t, eve, s, "eve@example.com", password)
	cookie := sessionCookie(t, ada, s)

	// serves fails unless requests GET /me with ada's cookie answer want's user, with no
	// statement on the sessions table.
	serves := func(what, want string) {
		t.Helper()
		const requests = 100
		mark := st.Mark()
		for i := range requests {
			status, body := do(t, ada, "GET", s.URL+"/me", "", "")
			if status != http.StatusOK || decodeUser(t, body).Email != want {
				t.Fatalf("%s: request %d got %d %s, want 200 and %s", what, i, status, body, want)
			}
		}
		if sqls := sessionStatementsSince(st, mark); len(sqls) != 0 {
			t.Errorf("%s: %d statements on the sessions table over %d requests, want 0: %q", what, len(sqls), requests, sqls)
		}
	}
	mustMe(t, ada, s, http.StatusOK) // warms memory if login did not
	serves("warm", email)
	first, _, ok := s.Store.Cached(cookie)
	if !ok {
		t.Fatal("ada's session is not warm after 100 requests")
	}

	// The logins' two notifications first: Ada's, arriving after the rewrite, would drop the new
	// copy, whose row it does not describe.
	for deadline := time.Now().Add(10 * time.Second); s.Store.Stats().Invalidations < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("heard %d of the logins' 2 notifications within 10s", s.Store.Stats().Invalidations)
		}
	}
	// Eve's value under Ada's id, with the expiry of her login (SESSION_IDLE_TIMEOUT): a new
	// value for the id, decoded anew.
	val, err := s.Store.Get(sessionCookie(t, eve, s))
	if err != nil || val == nil {
		t.Fatalf("eve's session: %q, %v", val, err)
	}
	if err := s.Store.Set(cookie, val, time.Hour); err != nil {
		t.Fatal(err)
	}
	if second, _, ok := s.Store.Cached(cookie); !ok || second == first {
		t.Fatalf("after the rewrite: Cached %v, want a new decoded value in memory", ok)
	}
	serves("rewritten", "eve@example.com")
}

// findCookie returns the cookie named name that resp sets, failing the test when there is none.
func findCookie(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, ck := range resp.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	t.Fatalf("%s %s: no Set-Cookie %s in %q", resp.Request.Method, resp.Request.URL, name, resp.Header.Values("Set-Cookie"))
	return nil
}

// withCookieJar returns a client whose jar already holds the session cookie value for s.
func withCookieJar(t *testing.T, s *server, value string) *http.Client {
	t.Helper()
	c := newClient(t)
	req, err := http.NewRequest("GET", s.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Jar.SetCookies(req.URL, []*http.Cookie{{Name: "session", Value: value, Path: "/"}})
	return c
}

func TestDatabaseGone(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	env["SESSION_CACHE_CAPACITY"] = "0" // every /me reads Postgres
	env["DB_QUERY_TIMEOUT"] = "1s"
	s := startServer(t, env, app.Hooks{})
	c := newClient(t)
	mustLogin(t, c, s, email, password)

	admin := pgtest.Pool(t, pgtest.AdminURL())
	name := dbURL[strings.LastIndex(dbURL, "/")+1:]
	name = name[:strings.IndexByte(name+"?", '?')]
	pgtest.Exec(t, admin, "DROP DATABASE "+name+" WITH (FORCE)")

	for _, tt := range []struct {
		path string
		want int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusServiceUnavailable},
		{"/me", http.StatusServiceUnavailable},
	} {
		if status, body := do(t, c, "GET", s.URL+tt.path, "", ""); status != tt.want {
			t.Errorf("GET %s with the database gone: got %d %s, want %d", tt.path, status, body, tt.want)
		}
	}
	status, body := do(t, c, "POST", s.URL+"/login", "application/json", loginBody(email, password))
	if status != http.StatusServiceUnavailable {
		t.Errorf("POST /login with the database gone: got %d %s, want 503", status, body)
	}
}

// slidingFixture creates a database with the test user and returns its URL, the server
// environment for it with a one-hour idle timeout and a one-minute touch interval, and a test
// clock.
func slidingFixture(t *testing.T) (dbURL string, env map[string]string, clk *testclock.Clock) {
	t.Helper()
	dbURL, env = withUser(t)
	env["SESSION_IDLE_TIMEOUT"] = "1h" // and so a touch interval of 1m
	return dbURL, env, newClock()
}

// twoServers creates a database with the test user and starts two servers on it, as two
// instances behind a load balancer.
func twoServers(t *testing.T) (dbURL string, a, b *server) {
	t.Helper()
	dbURL, env := withUser(t)
	return dbURL, startServer(t, env, app.Hooks{}), startServer(t, env, app.Hooks{})
}
