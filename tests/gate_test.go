package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// These tests drive the password gate under a patient attacker: a browser that logged in
// before keeps logging in whatever strangers do, guessing stops at a hard limit, addresses of
// one network count as one, and a throttled attempt costs the database nothing.

// retryAfter is resp's Retry-After in seconds, or fails the test.
func retryAfter(t *testing.T, resp *http.Response) time.Duration {
	t.Helper()
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("%d with Retry-After %q, want a whole number of seconds", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	return time.Duration(n) * time.Second
}

// deviceCookie returns the device cookie c's jar holds for s, or nil.
func deviceCookie(t *testing.T, c *http.Client, s *server) *http.Cookie {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "device" {
			return ck
		}
	}
	return nil
}

// An attacker who knows the victim's email guesses for a day of the server's clock, each guess
// from a fresh address, as fast as the throttle lets it (it waits out each Retry-After, no
// more). The victim's browser, which logged in before, logs in every time it tries; a new
// browser is refused once the account is past the hard limit, until a password change.
func TestKnownBrowserLogsInWhileAttacked(t *testing.T) {
	t.Parallel()
	dbURL, _ := withUser(t)
	clk := newClock()
	env := proxyEnv(dbURL)
	env["LOGIN_HARD_LIMIT"] = "30" // below the default 100, to hash less
	s := startServer(t, env, app.Hooks{Now: clk.Now})

	victim := newClient(t)
	resp := loginFrom(t, victim, s, "192.0.2.10", email, password)
	mustStatus(t, resp, http.StatusOK, "", "the victim's first login")
	var set string
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "device=") {
			set = v
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/", "max-age=31536000"} {
		if !strings.Contains(strings.ToLower(set), strings.ToLower(want)) {
			t.Errorf("device cookie %q: want %s", set, want)
		}
	}
	if strings.Contains(strings.ToLower(set), "secure") {
		t.Errorf("device cookie %q with COOKIE_SECURE=false: want it not Secure", set)
	}

	attacker := &http.Client{Timeout: 30 * time.Second} // no jar: a stranger every time
	var guesses, refused, victimTries, victimRefused int
	end := clk.Now().Add(24 * time.Hour)
	for i := 0; clk.Now().Before(end) && i < 1000; i++ {
		resp := loginFrom(t, attacker, s, fmt.Sprintf("198.51.%d.%d", i/250, i%250+1), email, fmt.Sprintf("guess %d", i))
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			guesses++
			continue
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("attacker's guess %d: got %d, want 401 or 429", i, resp.StatusCode)
		}
		// The account is throttled for strangers right now: the victim logs in regardless.
		victimTries++
		if r := loginFrom(t, victim, s, "192.0.2.10", email, password); r.StatusCode != http.StatusOK {
			victimRefused++
		}
		clk.Advance(retryAfter(t, resp))
	}
	t.Logf("a day of attack: %d guesses hashed, %d refused; the victim's known browser refused %d of %d logins",
		guesses, refused, victimRefused, victimTries)
	if victimRefused != 0 {
		t.Errorf("victim's logins from the known browser refused: got %d of %d, want 0", victimRefused, victimTries)
	}
	if guesses > 30 {
		t.Errorf("attacker's guesses in a day: got %d, want at most 30 (LOGIN_HARD_LIMIT)", guesses)
	}

	// Past the hard limit, a new browser is refused even with the right password, for as long
	// as it tries, until `user passwd`.
	newBrowser := newClient(t)
	resp = loginFrom(t, newBrowser, s, "192.0.2.11", email, password)
	mustStatus(t, resp, http.StatusTooManyRequests, "", "a new browser past the hard limit")
	clk.Advance(retryAfter(t, resp))
	resp = loginFrom(t, newBrowser, s, "192.0.2.11", email, password)
	mustStatus(t, resp, http.StatusTooManyRequests, "", "a new browser past the hard limit, later")
	const newPassword = "a fresh brass lantern glows"
	if out, err := runCLI(t, baseEnv(dbURL), newPassword+"\n", "user", "passwd", email); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	clk.Advance(retryAfter(t, resp))
	mustStatus(t, loginFrom(t, newBrowser, s, "192.0.2.11", email, newPassword), http.StatusOK, "", "a new browser after a password change")
}

// An IPv6 client holds a /64: its addresses count as one client. So do the addresses of an IPv4
// prefix when LOGIN_IPV4_PREFIX says so.
func TestRotatingAddressesCountAsOne(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, v4Prefix string
		addr           func(i int) string
	}{
		{"IPv6 /64", "", func(i int) string { return fmt.Sprintf("2001:db8:1:2:%x::%x", i*7919%0x10000, i+1) }},
		{"IPv4 /24", "24", func(i int) string { return fmt.Sprintf("127.0.1.%d", i+1) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := proxyEnv(pgtest.NewURL(t))
			env["LOGIN_ADDRESS_FAILURES"] = "10"
			if tt.v4Prefix != "" {
				env["LOGIN_IPV4_PREFIX"] = tt.v4Prefix
			}
			s := startServer(t, env, app.Hooks{})
			c := newClient(t)
			until429 := 0
			for i := range 20 {
				resp := loginFrom(t, c, s, tt.addr(i), fmt.Sprintf("user%d@example.com", i), "Winter2026!")
				if resp.StatusCode == http.StatusTooManyRequests {
					until429 = i + 1
					break
				}
				mustStatus(t, resp, http.StatusUnauthorized, "", fmt.Sprintf("spray %d", i+1))
			}
			t.Logf("%s: requests until 429 from rotating addresses: %d", tt.name, until429)
			if until429 != 11 {
				t.Errorf("requests until 429: got %d (0: never in 20), want 11 (LOGIN_ADDRESS_FAILURES=10, then refused)", until429)
			}
			// Another network is another client.
			mustStatus(t, loginFrom(t, c, s, "2001:db8:1:3::1", "user99@example.com", "Winter2026!"), http.StatusUnauthorized, "", "another network")
		})
	}
}

// A spray of unknown emails from rotating addresses keeps the strangers' hashing slot busy; the
// user whose browser logged in before still logs in every time, in the slot kept for it.
func TestKnownUserLogsInUnderSpray(t *testing.T) {
	t.Parallel()
	dbURL, _ := withUser(t)
	env := proxyEnv(dbURL)
	env["LOGIN_HASH_SLOTS"] = "1"
	s := startServer(t, env, app.Hooks{Config: func(c *app.Config) { c.Login.HashWait = 250 * time.Millisecond }})
	user := newClient(t)
	mustStatus(t, loginFrom(t, user, s, "192.0.2.20", email, password), http.StatusOK, "", "first login")

	stop := make(chan struct{})
	var sprayed, busy atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp := loginFrom(t, c, s, fmt.Sprintf("10.%d.%d.%d", g, i/250%250, i%250+1), fmt.Sprintf("spray%d-%d@example.com", g, i), "Winter2026!")
				sprayed.Add(1)
				if resp.StatusCode == http.StatusServiceUnavailable {
					busy.Add(1)
				}
			}
		})
	}
	// Let the spray fill the queue for the strangers' slot.
	for sprayed.Load() < 32 {
		time.Sleep(10 * time.Millisecond)
	}
	const tries = 10
	ok := 0
	for range tries {
		resp := loginFrom(t, user, s, "192.0.2.20", email, password)
		if resp.StatusCode == http.StatusOK {
			ok++
		} else {
			t.Logf("known user's login under the spray: got %d", resp.StatusCode)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("known user under a spray of %d logins (%d got 503): %d of %d logged in", sprayed.Load(), busy.Load(), ok, tries)
	if ok != tries {
		t.Errorf("known user's logins under the spray: got %d of %d, want all", ok, tries)
	}
}

// checkStatements counts the statements of sqls that check or count a password attempt (the
// user's row, the throttle's rows), leaving out the sweeps that run on their own.
func checkStatements(sqls []string) int {
	n := 0
	for _, q := range sqls {
		if strings.Contains(q, "FROM users WHERE") || strings.Contains(q, "INSERT INTO login_failures") ||
			strings.Contains(q, "login_failures WHERE key = ANY") {
			n++
		}
	}
	return n
}

// A flood from a throttled client costs the database nothing once an instance knows of the
// throttle, and logs one line per throttle, not per request. Another instance learns of it from
// its first read.
func TestThrottledLoginCostsNoStatement(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["LOGIN_ACCOUNT_FAILURES"] = "1"
	clk := newClock()
	a, sta := startCounted(t, env, app.Hooks{Now: clk.Now})
	b, stb := startCounted(t, env, app.Hooks{Now: clk.Now})
	c := newClient(t)
	mustStatus(t, loginFrom(t, c, a, "", email, "wrong password here"), http.StatusUnauthorized, "", "failure")

	const flood = 50
	for _, in := range []struct {
		name string
		s    *server
		st   *pgtest.Counter
		want int // statements of the whole flood
	}{
		{"the instance that counted the failure", a, sta, 0},
		{"another instance", b, stb, 2}, // its first: the user and the throttle's rows
	} {
		mark := in.st.Mark()
		for i := range flood {
			mustStatus(t, loginFrom(t, c, in.s, "", email, password), http.StatusTooManyRequests, "", fmt.Sprintf("%s, attempt %d", in.name, i))
		}
		_, sqls := in.st.Since(mark)
		t.Logf("%s: %d statements for %d throttled logins", in.name, checkStatements(sqls), flood)
		if n := checkStatements(sqls); n != in.want {
			t.Errorf("%s: statements for %d throttled logins: got %d, want %d: %q", in.name, flood, n, in.want, sqls)
		}
		if n := strings.Count(in.s.Log.String(), "outcome=throttled"); n != 1 {
			t.Errorf("%s: throttled log lines: got %d, want 1", in.name, n)
		}
	}

	// Once Retry-After has passed the instance asks the database again, and the login goes.
	clk.Advance(time.Minute)
	mark := sta.Mark()
	mustStatus(t, loginFrom(t, c, a, "", email, password), http.StatusOK, "", "after Retry-After")
	if _, sqls := sta.Since(mark); checkStatements(sqls) == 0 {
		t.Errorf("login after Retry-After sent no statement: want it read from the database")
	}
}

// Reading login_failures does not confirm a guessed email: its keys are keyed hashes.
func TestLoginFailureKeysAreKeyed(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	s := startServer(t, env, app.Hooks{})
	mustStatus(t, loginFrom(t, newClient(t), s, "", email, "wrong password here"), http.StatusUnauthorized, "", "failure")
	sum := sha256.Sum256([]byte(email))
	unkeyed := "account:" + hex.EncodeToString(sum[:16])
	db := pgtest.Pool(t, dbURL)
	if n := pgtest.Count(t, db, "SELECT count(*) FROM login_failures WHERE key LIKE 'account:%'"); n != 1 {
		t.Fatalf("account rows after a failure: got %d, want 1", n)
	}
	if n := pgtest.Count(t, db, "SELECT count(*) FROM login_failures WHERE key = $1", unkeyed); n != 0 {
		t.Errorf("the row of %s is found by its unkeyed SHA-256 %s, want a keyed hash", email, unkeyed)
	}
}
