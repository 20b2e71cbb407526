package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// These tests drive login under attack: throttling per account and per address,
// across two instances on one database; abandoned logins that must not starve a real one; and
// the security log.

// proxyEnv is baseEnv for a server behind a proxy at 127.0.0.1, the tests' own address: the
// client address of a request is then its X-Real-IP header, so one test client can play many
// clients.
func proxyEnv(dbURL string) map[string]string {
	env := baseEnv(dbURL)
	env["TRUSTED_PROXIES"] = "127.0.0.1"
	return env
}

// loginFrom sends POST /login for email and password, with X-Real-IP: addr unless addr is "".
func loginFrom(t *testing.T, c *http.Client, s *server, addr, email, password string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL+"/login", strings.NewReader(loginBody(email, password)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if addr != "" {
		req.Header.Set("X-Real-IP", addr)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("login %s from %s: %v", email, addr, err)
	}
	readBody(t, resp)
	return resp
}

// mustStatus fails the test unless resp has status want and, for 429 and 503, a Retry-After of
// retryAfter ("" for any).
func mustStatus(t *testing.T, resp *http.Response, want int, retryAfter string, what string) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: got %d, want %d", what, resp.StatusCode, want)
	}
	if want == http.StatusTooManyRequests || want == http.StatusServiceUnavailable {
		got := resp.Header.Get("Retry-After")
		if got == "" || (retryAfter != "" && got != retryAfter) {
			t.Fatalf("%s: got Retry-After %q, want %q", what, got, retryAfter)
		}
	}
}

func TestThrottlePerAccountAcrossInstances(t *testing.T) {
	t.Parallel()
	dbURL, _ := withUser(t)
	clk := newClock()
	a := startServer(t, proxyEnv(dbURL), app.Hooks{Now: clk.Now})
	b := startServer(t, proxyEnv(dbURL), app.Hooks{Now: clk.Now})
	c := newClient(t)
	db := pgtest.Pool(t, dbURL)
	accountFailures := func() int64 {
		return pgtest.Count(t, db, "SELECT coalesce(sum(failures), 0) FROM login_failures WHERE key LIKE 'account:%'")
	}

	// The default LOGIN_ACCOUNT_FAILURES is 5: five wrong passwords, alternating instances and
	// each from another address, are five 401s.
	for i := range 5 {
		s := []*server{a, b}[i%2]
		resp := loginFrom(t, c, s, fmt.Sprintf("198.51.100.%d", i+1), email, fmt.Sprintf("wrong guess %d", i))
		mustStatus(t, resp, http.StatusUnauthorized, "", fmt.Sprintf("wrong password %d", i+1))
	}
	// The sixth attempt is refused on both instances, from a fresh address, right password or not.
	for _, s := range []*server{a, b} {
		mustStatus(t, loginFrom(t, c, s, "203.0.113.1", email, "wrong guess 6"), http.StatusTooManyRequests, "60", "sixth attempt")
		mustStatus(t, loginFrom(t, c, s, "203.0.113.2", email, password), http.StatusTooManyRequests, "60", "right password while throttled")
	}
	if n := accountFailures(); n != 5 {
		t.Errorf("account failures after the throttled attempts: got %d, want 5 (a throttled attempt is not checked)", n)
	}

	// Once the lockout (LOGIN_LOCKOUT, 1m) has passed, the right password logs in and clears
	// the account's count.
	clk.Advance(59 * time.Second)
	mustStatus(t, loginFrom(t, c, b, "203.0.113.3", email, password), http.StatusTooManyRequests, "1", "a second before the end")
	clk.Advance(time.Second)
	mustStatus(t, loginFrom(t, c, a, "203.0.113.3", email, password), http.StatusOK, "", "right password after the lockout")
	if n := accountFailures(); n != 0 {
		t.Errorf("account failures after a success: got %d, want 0", n)
	}
	for i := range 4 { // had the count stayed, the first of these would be throttled
		resp := loginFrom(t, c, []*server{a, b}[i%2], "198.51.100.50", email, "wrong again")
		mustStatus(t, resp, http.StatusUnauthorized, "", "wrong password after a success")
	}
}

func TestThrottlePerAddressAcrossInstances(t *testing.T) {
	t.Parallel()
	dbURL, _ := withUser(t)
	a := startServer(t, proxyEnv(dbURL), app.Hooks{})
	b := startServer(t, proxyEnv(dbURL), app.Hooks{})
	c := newClient(t)

	// Spraying: one address, one guess on each of many accounts (unknown ones here; known ones
	// count alike). The default LOGIN_ADDRESS_FAILURES is 30.
	const sprayer = "192.0.2.66"
	for i := range 30 {
		resp := loginFrom(t, c, []*server{a, b}[i%2], sprayer, fmt.Sprintf("user%d@example.com", i), "Winter2026!")
		mustStatus(t, resp, http.StatusUnauthorized, "", fmt.Sprintf("spray %d", i+1))
	}
	mustStatus(t, loginFrom(t, c, a, sprayer, "user30@example.com", "Winter2026!"), http.StatusTooManyRequests, "60", "spray 31")
	mustStatus(t, loginFrom(t, c, b, sprayer, email, password), http.StatusTooManyRequests, "60", "right password from the sprayer's address")
	// Another address is not affected, nor is the account.
	mustStatus(t, loginFrom(t, c, b, "192.0.2.67", email, password), http.StatusOK, "", "another address")
}

// Without TRUSTED_PROXIES the header is the client's word and counts for nothing: the address
// is the connection's.
func TestClientAddressIgnoresHeadersOfUntrustedPeers(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	for _, trusted := range []string{"", "10.9.8.7"} {
		env := baseEnv(dbURL)
		env["LOGIN_ADDRESS_FAILURES"] = "3"
		env["TRUSTED_PROXIES"] = trusted
		s := startServer(t, env, app.Hooks{})
		c := newClient(t)
		for i := range 3 {
			resp := loginFrom(t, c, s, fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("u%d-%s@example.com", i, trusted), "Winter2026!")
			mustStatus(t, resp, http.StatusUnauthorized, "", "spray")
		}
		resp := loginFrom(t, c, s, "198.51.100.99", "another@example.com", "Winter2026!")
		mustStatus(t, resp, http.StatusTooManyRequests, "", fmt.Sprintf("TRUSTED_PROXIES=%q: fourth failure from 127.0.0.1 under a new header", trusted))
		s.Stop()
		pgtest.Exec(t, pgtest.Pool(t, dbURL), "DELETE FROM login_failures")
	}
}

// Starvation: a burst of logins whose clients give up after 0.2 s. fasthttp
// never tells the server that they have gone, so what keeps them from queueing up hashes is the
// bounded wait for a hashing slot. Each comes from its own address with its own email, as from
// a botnet, so that no throttle helps: only the slots and the deadline bound the work.
//
// With one slot, LOGIN_HASH_WAIT=500ms (the default) and 150 logins arriving together, at most about
// (arrival spread + 0.5 s) / (time of one hash) of them can be hashed: a handful here, under
// 30 even with a 20 ms hash on a fast machine. Without the deadline all 150 would be. The test
// counts the hashes from the log, where every attempt says whether it was checked (failure) or
// refused for want of a slot in time (busy).
func TestAbandonedLoginsDoNotStarveLogin(t *testing.T) {
	t.Parallel()
	dbURL, _ := withUser(t)
	env := proxyEnv(dbURL)
	env["LOGIN_HASH_SLOTS"] = "1"
	s := startServer(t, env, app.Hooks{Config: func(c *app.Config) { c.Login.HashWait = 500 * time.Millisecond }}) // the default wait

	const burst = 150
	// Connect first, so that every request reaches the server however loaded the machine is;
	// then send them all at once and hang up after 0.2 s.
	conns := make([]net.Conn, burst)
	for i := range conns {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns[i] = conn
	}
	cpu0 := processCPU(t)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, conn := range conns {
		body := loginBody(fmt.Sprintf("bot%d@example.com", i), "hunter2 hunter2")
		req := fmt.Sprintf("POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Real-IP: 10.0.%d.%d\r\nContent-Length: %d\r\n\r\n%s",
			strings.TrimPrefix(s.URL, "http://"), i/250, i%250+1, len(body), body)
		wg.Go(func() {
			<-start
			if _, err := io.WriteString(conn, req); err != nil {
				t.Errorf("send burst login %d: %v", i, err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, _ = conn.Read(make([]byte, 512)) // most time out: that is the attack
			conn.Close()
		})
	}
	close(start)
	wg.Wait()

	// The real login, from its own address, just after the burst was abandoned.
	begin := time.Now()
	resp := loginFrom(t, newClient(t), s, "192.0.2.1", email, password)
	took := time.Since(begin)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("real login after the burst: got %d, want 200 (or 503 with Retry-After)", resp.StatusCode)
	}
	if took > 3*time.Second {
		t.Errorf("real login after the burst answered in %v, want within 3s", took)
	}

	// Every abandoned login ends in one log line; wait for the last.
	deadline := time.Now().Add(30 * time.Second)
	var hashed, busy int
	for {
		hashed, busy = 0, 0
		for _, line := range strings.Split(s.Log.String(), "\n") {
			if !strings.Contains(line, "msg=login ") || !strings.Contains(line, "client=10.0.") {
				continue
			}
			switch {
			case strings.Contains(line, "outcome=failure"):
				hashed++
			case strings.Contains(line, "outcome=busy"):
				busy++
			default:
				t.Fatalf("burst login logged %q, want outcome failure or busy", line)
			}
		}
		if hashed+busy == burst || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cpu := processCPU(t) - cpu0
	t.Logf("burst of %d abandoned logins: %d hashed, %d refused unhashed (503); process CPU %v; real login %d in %v",
		burst, hashed, busy, cpu, resp.StatusCode, took)
	if hashed+busy != burst {
		t.Fatalf("burst logins logged: got %d hashed + %d busy, want %d in all", hashed, busy, burst)
	}
	if hashed > burst/5 {
		t.Errorf("burst logins hashed: got %d of %d, want at most %d (LOGIN_HASH_WAIT bounds the queue)", hashed, burst, burst/5)
	}
}

// processCPU is the CPU time, user and system, this process (test and servers) has used.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A whole run — failures, a throttled attempt, login, logout, logout everywhere and a password
// change — logs one line per event, and none of the secrets involved.
func TestSecurityLogKeepsSecrets(t *testing.T) {
	t.Parallel()
	dbURL, env := withUser(t)
	env["LOGIN_ACCOUNT_FAILURES"] = "2"
	s := startServer(t, env, app.Hooks{})
	c := newClient(t)

	const (
		wrongPassword = "Tr0ub4dor&3 wrong"
		strangerEmail = "Grace.Hopper@Example.org"
		strangerPass  = "cobol forever and ever"
		newPassword   = "an entirely new passphrase"
	)
	mustStatus(t, loginFrom(t, c, s, "", email, wrongPassword), http.StatusUnauthorized, "", "wrong password")
	for range 2 {
		mustStatus(t, loginFrom(t, c, s, "", strangerEmail, strangerPass), http.StatusUnauthorized, "", "unknown email")
	}
	mustStatus(t, loginFrom(t, c, s, "", strangerEmail, strangerPass), http.StatusTooManyRequests, "", "unknown email, throttled")

	var cookies []string
	mustLogin(t, c, s, "ADA@example.com", password)
	cookies = append(cookies, sessionCookie(t, c, s))
	if d := deviceCookie(t, c, s); d != nil {
		cookies = append(cookies, d.Value)
	} else {
		cookies = append(cookies, "") // fails below: a login sets the device cookie
	}
	mustMe(t, c, s, http.StatusOK)
	if status, _ := do(t, c, "POST", s.URL+"/logout", "", ""); status != http.StatusNoContent {
		t.Fatalf("logout: got %d, want 204", status)
	}
	mustLogin(t, c, s, email, password)
	cookies = append(cookies, sessionCookie(t, c, s))
	if status, _ := do(t, c, "POST", s.URL+"/logout/all", "", ""); status != http.StatusNoContent {
		t.Fatalf("logout everywhere: got %d, want 204", status)
	}
	var cliOut, cliLog bytes.Buffer
	if err := app.Run(context.Background(), []string{"user", "passwd", email}, lookupEnv(baseEnv(dbURL)),
		strings.NewReader(newPassword+"\n"), &cliOut, &cliLog, app.Hooks{}); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, cliLog.String())
	}

	logs := s.Log.String() + cliLog.String()
	for _, want := range []struct {
		line  string
		count int
	}{
		{"msg=login outcome=failure user=1 client=127.0.0.1", 1},
		{"msg=login outcome=failure email_tag=", 2},
		{"msg=login outcome=throttled email_tag=", 1},
		{"msg=login outcome=success user=1 client=127.0.0.1", 2},
		{"msg=logout outcome=success user=1 client=127.0.0.1", 1},
		{`msg="logout everywhere" outcome=success user=1 client=127.0.0.1`, 1},
		{`msg="password change" outcome=success user=1 client=cli`, 1},
	} {
		if got := strings.Count(logs, want.line); got != want.count {
			t.Errorf("log lines with %q: got %d, want %d", want.line, got, want.count)
		}
	}
	secrets := append([]string{password, wrongPassword, strangerPass, newPassword, email, strangerEmail, "hopper"}, cookies...)
	for _, secret := range secrets {
		if secret == "" {
			t.Fatal("a session or device cookie was empty: the run did not log in")
		}
		if strings.Contains(strings.ToLower(logs), strings.ToLower(secret)) {
			t.Errorf("the log contains the secret %q:\n%s", secret, logs)
		}
	}
}

// What a login costs the database: a failed one counts both keys in one statement, and one
// throttled by that failure costs nothing (this instance remembers the throttle).
func TestLoginStatements(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["LOGIN_ACCOUNT_FAILURES"] = "1"
	s, st := startCounted(t, env, app.Hooks{})
	c := newClient(t)

	tests := []struct {
		what        string
		password    string
		want        int
		selects     int // users and login_failures
		failUpserts int
	}{
		{"failure", "wrong password here", http.StatusUnauthorized, 2, 1}, // user, check, count (a slot at once: no second check)
		{"throttled", password, http.StatusTooManyRequests, 0, 0},         // known to this instance
	}
	for _, tt := range tests {
		mark := st.Mark()
		mustStatus(t, loginFrom(t, c, s, "", email, tt.password), tt.want, "", tt.what)
		_, sqls := st.Since(mark)
		var selects, upserts int
		for _, q := range sqls {
			switch {
			case strings.Contains(q, "INSERT INTO login_failures"):
				upserts++
			case strings.Contains(q, "FROM users") || strings.Contains(q, "FROM login_failures"):
				selects++
			}
		}
		if selects != tt.selects || upserts != tt.failUpserts {
			t.Errorf("%s: got %d reads and %d counting statements, want %d and %d: %q", tt.what, selects, upserts, tt.selects, tt.failUpserts, sqls)
		}
	}
}
