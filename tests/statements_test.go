package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// sessionSQL matches a statement on the sessions table (not session_key, not session_tombstones).
var sessionSQL = regexp.MustCompile(`\bsessions\b`)

// notifications watches the store's channel the way every other instance's listener does, so a
// test can tell what an operation costs instances other than the one that served it.
type notifications struct {
	conn *pgx.Conn
	seq  int
}

func listenNotifications(t *testing.T, dbURL string) *notifications {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect %s: %v (is PostgreSQL running on 127.0.0.1:5432?)", dbURL, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN sessions; LISTEN test_barrier"); err != nil {
		t.Fatal(err)
	}
	return &notifications{conn: conn}
}

// since returns the payloads of the notifications sent to the store's channel since the last
// call. It sends a barrier notification and reads up to it: PostgreSQL delivers notifications in
// commit order, so every notification of a statement that returned before the call is among
// them, and none is missed or counted twice.
func (n *notifications) since(t *testing.T) []string {
	t.Helper()
	n.seq++
	barrier := fmt.Sprint(n.seq)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.conn.Exec(ctx, "SELECT pg_notify('test_barrier', $1)", barrier); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := n.conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("waiting for the barrier notification: %v", err)
		}
		if m.Channel == "test_barrier" && m.Payload == barrier {
			return got
		}
		if m.Channel == "sessions" {
			got = append(got, strings.Fields(m.Payload)[0])
		}
	}
}

// counted is a running server with a counter on its database pool.
type counted struct {
	*server
	sql *pgtest.Counter
}

// sessionStatements returns the statements on the sessions table that s sent since mark.
func (s counted) sessionStatements(mark int) []string { return sessionStatementsSince(s.sql, mark) }

// sessionStatementsSince returns the statements on the sessions table that st counted since
// mark. The guard's promises are about this table: what a handler reads besides is its own.
func sessionStatementsSince(st *pgtest.Counter, mark int) []string {
	_, all := st.Since(mark)
	var out []string
	for _, q := range all {
		if sessionSQL.MatchString(q) {
			out = append(out, q)
		}
	}
	return out
}

// TestSessionStatementCosts counts what each session operation costs: the statements on the
// sessions table sent by the instance that serves it, the notifications every other instance
// receives, and what the next request for the same session costs another instance. The touch
// time is not part of a session's value, so a touch moves the row's expiry and nothing else:
// one statement, one read of the session, and nothing for the other instances, whose copies
// stay good; another instance's own refresh in the same touch interval writes nothing.
func TestSessionStatementCosts(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	clk := newClock()
	start := func() counted {
		// The store's sweep kept out of the counts; a touch interval of a minute.
		s, st := startCounted(t, env, app.Hooks{Now: clk.Now, Config: func(c *app.Config) {
			noSweep(c)
			c.TouchInterval = time.Minute
		}})
		return counted{s, st}
	}
	a, b := start(), start()
	notes := listenNotifications(t, dbURL)
	phone, laptop := newClient(t), newClient(t)

	type cost struct {
		all    int      // statements sent by the serving instance
		here   []string // of which on the sessions table
		others []string // notifications every other instance received
	}
	measure := func(op func()) cost {
		notes.since(t)
		mark := a.sql.Mark()
		op()
		_, sqls := a.sql.Since(mark)
		all := 0
		for _, q := range sqls {
			if !strings.Contains(q, "DELETE FROM login_failures WHERE key IN") { // the minutely sweep
				all++
			}
		}
		return cost{all: all, here: a.sessionStatements(mark), others: notes.since(t)}
	}
	check := func(what string, got cost, here int, others string) {
		t.Helper()
		t.Logf("%-28s %d statement(s) on the sessions table of %d on this instance %q; other instances notified: %q",
			what, len(got.here), got.all, got.here, got.others)
		if len(got.here) != here || strings.Join(got.others, " ") != others {
			t.Errorf("%s: got %d statements here %q and notifications %q to the others, want %d and %q",
				what, len(got.here), got.here, got.others, here, others)
		}
	}
	// bMe is GET /me on B for c, and the statements it cost B.
	bMe := func(c *http.Client, want int) []string {
		t.Helper()
		mark := b.sql.Mark()
		mustMe(t, c, b.server, want)
		return b.sessionStatements(mark)
	}

	// A login without a session: the session's value, expiry and owner in one statement; with
	// the user's lookup and the throttle's check, three in all.
	login := measure(func() { mustLogin(t, phone, a.server, email, password) })
	check("login", login, 1, "u")
	if login.all != 3 {
		t.Errorf("login: got %d statements in all, want 3 (user, throttle, session)", login.all)
	}
	// A login over a live session: the old one goes (session fixation), the new one is written.
	check("login over a live session", measure(func() { mustLogin(t, phone, a.server, email, password) }), 2, "d u")
	mustLogin(t, laptop, a.server, email, password)

	// B reads the session once, then serves it from memory.
	if got := bMe(phone, http.StatusOK); len(got) != 1 {
		t.Fatalf("first GET /me on B: got %d statements %q, want 1 read", len(got), got)
	}
	if got := bMe(phone, http.StatusOK); len(got) != 0 {
		t.Fatalf("warm GET /me on B: got %d statements %q, want 0", len(got), got)
	}

	// A touch on A, once the touch interval has passed: one statement, one read of the session.
	clk.Advance(2 * time.Minute)
	reads := func(s counted) uint64 { st := s.Store.Stats(); return st.Hits + st.Misses }
	// B has heard the four notifications of the logins so far (u, d u, u) before the count starts:
	// a late one would look like a notification of the touch.
	for deadline := time.Now().Add(10 * time.Second); b.Store.Stats().Invalidations < 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("B heard %d of the logins' 4 notifications within 10s", b.Store.Stats().Invalidations)
		}
	}
	readsBefore, heardBefore := reads(a), b.Store.Stats().Invalidations
	check("touch", measure(func() { mustMe(t, phone, a.server, http.StatusOK) }), 1, "")
	if got := reads(a) - readsBefore; got != 1 {
		t.Errorf("touch: the session was read %d times, want 1", got)
	}
	if got := b.Store.Stats(); got.Invalidations != heardBefore || got.Reads != 1 {
		t.Errorf("B after a touch on A: %d notifications and %d reads in all, want %d and 1 (B's copy is still good)",
			got.Invalidations, got.Reads, heardBefore)
	}
	// B's own request in the same interval refreshes too, for all it knows: one statement that
	// finds the expiry already moved and writes nothing; then B is up to date.
	db := pgtest.Pool(t, dbURL)
	version := func() int64 { // the rows' versions: change with every write of one
		return pgtest.Count(t, db, "SELECT sum(xmin::text::bigint) FROM sessions")
	}
	v := version()
	if got := bMe(phone, http.StatusOK); len(got) != 1 {
		t.Errorf("GET /me on B after a touch on A: got %d statements %q, want its own refresh", len(got), got)
	}
	if version() != v {
		t.Error("B's refresh after A's wrote the row again")
	}
	if got := bMe(phone, http.StatusOK); len(got) != 0 {
		t.Errorf("GET /me on B after its refresh: got %d statements %q, want 0", len(got), got)
	}
	// Within the interval, no more writes.
	check("GET /me within the interval", measure(func() { mustMe(t, phone, a.server, http.StatusOK) }), 0, "")

	// Logging out everywhere: one statement for every session of the user, one notification
	// for each session it ended.
	check("logout everywhere", measure(func() {
		if got, body := do(t, phone, "POST", a.URL+"/logout/all", "", ""); got != http.StatusNoContent {
			t.Fatalf("POST /logout/all: got %d %s, want 204", got, body)
		}
	}), 1, "d d")
	mustMe(t, phone, a.server, http.StatusUnauthorized)
	mustMe(t, laptop, b.server, http.StatusUnauthorized)

	// Ending one's own session from the list (a logout): one statement.
	mustLogin(t, phone, a.server, email, password)
	var own string
	for _, s := range mustList(t, phone, a.server) {
		if s.Current {
			own = s.ID
		}
	}
	check("ending one's own session", measure(func() {
		if got := endSession(t, phone, a.server, own); got != http.StatusNoContent {
			t.Fatalf("DELETE /sessions/{own id}: got %d, want 204", got)
		}
	}), 1, "d")
	mustMe(t, phone, a.server, http.StatusUnauthorized)

	// A plain logout: one statement.
	mustLogin(t, phone, a.server, email, password)
	check("logout", measure(func() {
		if got, body := do(t, phone, "POST", a.URL+"/logout", "", ""); got != http.StatusNoContent {
			t.Fatalf("POST /logout: got %d %s, want 204", got, body)
		}
	}), 1, "d")
}

// TestCookieAttributesAgree: the cookies the server sets itself (a refresh, logging out
// everywhere, ending one's own session) carry exactly the attributes of those Fiber's session
// middleware sets (login, logout), with and without COOKIE_SECURE: a browser must keep, send and
// delete them alike (a __Host- cookie set without Secure or Path=/ would be refused).
func TestCookieAttributesAgree(t *testing.T) {
	t.Parallel()
	for _, secure := range []string{"false", "true"} {
		t.Run("COOKIE_SECURE="+secure, func(t *testing.T) {
			_, env, clk := slidingFixture(t)
			env["COOKIE_SECURE"] = secure
			s := startServer(t, env, app.Hooks{Now: clk.Now})

			// send makes a request with the session cookie value (if any) and returns the
			// session's Set-Cookie header of the response, name=value first.
			send := func(method, path, body, cookie string, want int) []string {
				t.Helper()
				req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got := readBody(t, resp)
				if resp.StatusCode != want {
					t.Fatalf("%s %s: got %d %s, want %d", method, path, resp.StatusCode, got, want)
				}
				for _, h := range resp.Header.Values("Set-Cookie") {
					if strings.Contains(h, "session=") {
						return strings.Split(h, "; ")
					}
				}
				t.Fatalf("%s %s: no session cookie in %q", method, path, resp.Header.Values("Set-Cookie"))
				return nil
			}
			login := func() string { return send("POST", "/login", loginBody(email, password), "", http.StatusOK)[0] }
			// attrs is the attributes of a Set-Cookie, without its value and lifetime.
			attrs := func(h []string) string {
				name, _, _ := strings.Cut(h[0], "=")
				out := []string{name}
				for _, a := range h[1:] {
					if k, _, _ := strings.Cut(strings.ToLower(a), "="); k != "expires" && k != "max-age" {
						out = append(out, a)
					}
				}
				return strings.Join(out, "; ")
			}
			lifetime := func(h []string) (maxAge string, expires time.Time) {
				for _, a := range h[1:] {
					k, v, _ := strings.Cut(a, "=")
					switch strings.ToLower(k) {
					case "max-age":
						maxAge = v
					case "expires":
						expires, _ = http.ParseTime(v)
					}
				}
				return maxAge, expires
			}

			first := login()
			byFiber := attrs(send("POST", "/login", loginBody(email, password), "", http.StatusOK))
			clk.Advance(2 * time.Minute)
			refresh := send("GET", "/me", "", first, http.StatusOK)
			if got := attrs(refresh); got != byFiber {
				t.Errorf("refresh cookie: %q, login's (Fiber's): %q", got, byFiber)
			}
			if maxAge, _ := lifetime(refresh); maxAge == "" || maxAge == "0" || strings.HasPrefix(maxAge, "-") || refresh[0] != first {
				t.Errorf("refresh cookie %q: want the same session and a positive Max-Age", refresh)
			}

			deletedByFiber := send("POST", "/logout", "", login(), http.StatusNoContent)
			ours := map[string][]string{
				"logout everywhere": send("POST", "/logout/all", "", login(), http.StatusNoContent),
			}
			own := login()
			var list []struct {
				ID      string `json:"id"`
				Current bool   `json:"current"`
			}
			req, _ := http.NewRequest("GET", s.URL+"/sessions", nil)
			req.Header.Set("Cookie", own)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(readBody(t, resp)), &list); err != nil || len(list) != 1 || !list[0].Current {
				t.Fatalf("GET /sessions: %+v, %v; want the request's own session alone", list, err)
			}
			ours["ending one's own session"] = send("DELETE", "/sessions/"+list[0].ID, "", own, http.StatusNoContent)
			for what, h := range ours {
				if got, want := attrs(h), attrs(deletedByFiber); got != want {
					t.Errorf("%s: deletion cookie %q, logout's (Fiber's): %q", what, got, want)
				}
				if _, exp := lifetime(h); !strings.HasSuffix(h[0], "=") || !exp.Before(time.Now()) {
					t.Errorf("%s: cookie %q, want an empty value expiring in the past", what, h)
				}
			}
		})
	}
}
