package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// uaTransport sends every request with its own User-Agent, as one browser would.
type uaTransport struct{ ua string }

func (u uaTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(req)
}

// newBrowser is newClient whose requests carry the User-Agent ua.
func newBrowser(t *testing.T, ua string) *http.Client {
	t.Helper()
	c := newClient(t)
	c.Transport = uaTransport{ua}
	return c
}

// mustList returns GET /sessions for c on s, failing the test unless it answers 200.
func mustList(t *testing.T, c *http.Client, s *server) []handlers.Session {
	t.Helper()
	status, body := do(t, c, "GET", s.URL+"/sessions", "", "")
	if status != http.StatusOK {
		t.Fatalf("GET %s/sessions: got %d %s, want 200", s.URL, status, body)
	}
	var list []handlers.Session
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("GET /sessions: body %q: %v", body, err)
	}
	return list
}

// endSession returns the status of DELETE /sessions/{id} for c on s.
func endSession(t *testing.T, c *http.Client, s *server, id string) int {
	t.Helper()
	status, _ := do(t, c, "DELETE", s.URL+"/sessions/"+id, "", "")
	return status
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestSessionListAcrossServers: three logins of one user (two on A, one
// on B), listed from B; one ended from A is refused by both servers within notifyWithin while
// the other two keep working; another user can end none of them.
func TestSessionListAcrossServers(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	mustCreateUser(t, dbURL, "bob@example.com", password)
	env["SESSION_IDLE_TIMEOUT"] = "1h" // and so a touch interval of 1m
	clk := newClock()                  // one clock for both instances, moved between logins to order them
	a := startServer(t, env, app.Hooks{Now: clk.Now})
	b := startServer(t, env, app.Hooks{Now: clk.Now})

	laptop, phone, tablet := newBrowser(t, "laptop"), newBrowser(t, "phone"), newBrowser(t, "tablet")
	bob := newBrowser(t, "bob")
	mustLogin(t, laptop, a, email, password)
	clk.Advance(time.Minute)
	mustLogin(t, phone, a, email, password)
	clk.Advance(time.Minute)
	mustLogin(t, tablet, b, email, password)
	mustLogin(t, bob, b, "bob@example.com", password)
	loginOfTablet := clk.Now().Truncate(time.Second)

	// Listed from B, newest first, the tablet's own marked current.
	list := mustList(t, tablet, b)
	if len(list) != 3 {
		t.Fatalf("GET /sessions: got %d sessions %+v, want 3", len(list), list)
	}
	ids := map[string]string{} // user agent -> id
	for i, want := range []string{"tablet", "phone", "laptop"} {
		got := list[i]
		if got.UserAgent != want {
			t.Errorf("session %d: got user agent %q, want %q (newest first)", i, got.UserAgent, want)
		}
		if got.Current != (want == "tablet") {
			t.Errorf("session %s: got current %v, want %v", want, got.Current, want == "tablet")
		}
		if got.Address != "127.0.0.1" {
			t.Errorf("session %s: got address %q, want 127.0.0.1", want, got.Address)
		}
		if got.LastUsed.Before(got.Created) {
			t.Errorf("session %s: last used %v before created %v", want, got.LastUsed, got.Created)
		}
		ids[want] = got.ID
	}
	if !list[0].Created.Equal(loginOfTablet) {
		t.Errorf("tablet created: got %v, want %v", list[0].Created, loginOfTablet)
	}
	for ua, c := range map[string]*http.Client{"laptop": laptop, "phone": phone} {
		ck := sessionCookie(t, c, a)
		if id := ids[ua]; id == "" || id == ck || id == sha256Hex(ck) || strings.Contains(id, ck) {
			t.Errorf("id of %s: got %q, want neither its cookie %q nor the cookie's SHA-256", ua, id, ck)
		}
	}
	db := pgtest.Pool(t, dbURL)
	for _, c := range []*http.Client{laptop, phone, tablet} {
		ck := sessionCookie(t, c, a)
		if n := pgtest.Count(t, db, "SELECT count(*) FROM sessions WHERE position(convert_to($1, 'UTF8') IN v) > 0 OR strpos(handle, $1) > 0", ck); n != 0 {
			t.Errorf("the sessions' values or handles hold a cookie in %d rows", n)
		}
	}

	// Last used moves at the touch interval's granularity.
	clk.Advance(2 * time.Minute)
	mustMe(t, laptop, a, http.StatusOK)
	for _, s := range mustList(t, laptop, a) {
		if s.UserAgent == "laptop" && !s.LastUsed.Equal(clk.Now().Truncate(time.Second)) {
			t.Errorf("laptop last used: got %v, want %v after a request past the touch interval", s.LastUsed, clk.Now())
		}
		if (s.UserAgent == "laptop") != s.Current {
			t.Errorf("listed from the laptop: %s has current %v", s.UserAgent, s.Current)
		}
	}

	// Another user can end none of them, nor see them.
	for ua, id := range ids {
		if got := endSession(t, bob, b, id); got != http.StatusNotFound {
			t.Errorf("bob ends %s's session: got %d, want 404", ua, got)
		}
	}
	if got := mustList(t, bob, b); len(got) != 1 || got[0].UserAgent != "bob" || !got[0].Current {
		t.Errorf("bob's list: got %+v, want his own session alone", got)
	}
	// A cross-site page cannot make a browser end one.
	req, _ := http.NewRequest("DELETE", a.URL+"/sessions/"+ids["phone"], nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := laptop.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site DELETE: got %d, want 403", resp.StatusCode)
	}

	// Every session in both memories, then the phone's ended from the laptop on A.
	for _, c := range []*http.Client{laptop, phone, tablet} {
		mustMe(t, c, a, http.StatusOK)
		mustMe(t, c, b, http.StatusOK)
	}
	phoneCookie := withCookie(sessionCookie(t, phone, a))
	if got := endSession(t, laptop, a, ids["phone"]); got != http.StatusNoContent {
		t.Fatalf("laptop ends the phone's session: got %d, want 204", got)
	}
	mustMe(t, phoneCookie, a, http.StatusUnauthorized) // the instance that ended it: at once
	took := eventually(t, phoneCookie, b, http.StatusUnauthorized, notifyWithin)
	t.Logf("B refused the ended session %v after DELETE /sessions/{id} on A", took)
	for _, c := range []*http.Client{laptop, tablet} {
		mustMe(t, c, a, http.StatusOK)
		mustMe(t, c, b, http.StatusOK)
	}
	if got := sessionCookie(t, laptop, a); got == "" {
		t.Error("ending another session cleared the laptop's own cookie")
	}
	if got := endSession(t, laptop, a, ids["phone"]); got != http.StatusNotFound {
		t.Errorf("ending it again: got %d, want 404", got)
	}
	if n := pgtest.Count(t, db, "SELECT count(*) FROM sessions WHERE handle = $1", ids["phone"]); n != 0 {
		t.Errorf("the ended session's row and metadata: got %d rows, want 0", n)
	}
	if got := mustList(t, laptop, b); len(got) != 2 {
		t.Errorf("list after ending one: got %d sessions, want 2", len(got))
	}

	// Ending the request's own session is a logout.
	tabletCookie := withCookie(sessionCookie(t, tablet, b))
	resp = doResp(t, tablet, "DELETE", b.URL+"/sessions/"+ids["tablet"], "", "")
	readBody(t, resp)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("tablet ends its own session: got %d, want 204", resp.StatusCode)
	}
	if ck := findCookie(t, resp, "session"); ck.MaxAge >= 0 && !ck.Expires.Before(time.Now()) {
		t.Errorf("tablet's cookie after ending its own session: got %+v, want it expired", ck)
	}
	mustMe(t, tablet, b, http.StatusUnauthorized)
	eventually(t, tabletCookie, a, http.StatusUnauthorized, notifyWithin)
	if got := mustList(t, laptop, a); len(got) != 1 || got[0].UserAgent != "laptop" || !got[0].Current {
		t.Errorf("list at the end: got %+v, want the laptop's alone", got)
	}

	// The metadata lives in the sessions' own rows, and goes with them.
	if status, _ := do(t, laptop, "POST", a.URL+"/logout/all", "", ""); status != http.StatusNoContent {
		t.Fatalf("logout/all: got %d, want 204", status)
	}
	if n := pgtest.Count(t, db, "SELECT count(*) FROM sessions"); n != 1 {
		t.Errorf("sessions after ada logged out everywhere: got %d, want bob's 1", n)
	}
}

// TestSessionListStatements counts what the feature costs PostgreSQL: the listing one query,
// ending another session one statement, and a warm GET /me still none.
func TestSessionListStatements(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	clk := newClock() // still: no refresh falls due during the test
	s, st := startCounted(t, env, app.Hooks{Now: clk.Now, Config: noSweep})
	c, other := newBrowser(t, "one"), newBrowser(t, "other")
	mustLogin(t, c, s, email, password)
	mustLogin(t, other, s, email, password)
	mustMe(t, c, s, http.StatusOK)

	mark := st.Mark()
	list := mustList(t, c, s)
	if n, sqls := st.Since(mark); n != 1 {
		t.Errorf("GET /sessions: got %d statements, want 1: %q", n, sqls)
	}
	if len(list) != 2 {
		t.Fatalf("GET /sessions: got %d sessions, want 2", len(list))
	}
	mark = st.Mark()
	for range 50 {
		mustMe(t, c, s, http.StatusOK)
	}
	if sqls := sessionStatementsSince(st, mark); len(sqls) != 0 {
		t.Errorf("warm GET /me after listing: got %d statements on the sessions table, want 0: %q", len(sqls), sqls)
	}
	var otherID string
	for _, l := range list {
		if !l.Current {
			otherID = l.ID
		}
	}
	mark = st.Mark()
	if got := endSession(t, c, s, otherID); got != http.StatusNoContent {
		t.Fatalf("DELETE /sessions/{id}: got %d, want 204", got)
	}
	if n, sqls := st.Since(mark); n != 1 {
		t.Errorf("DELETE /sessions/{id} of another session: got %d statements, want 1: %q", n, sqls)
	}
}
