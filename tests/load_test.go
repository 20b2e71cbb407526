package tests

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load is a bounded load of browsers on two servers of one database. Each browser repeats:
// log in on one server, GET /me on both in turn, log out, and watch the other server until it
// refuses the ended session. Every answer is counted by phase, request and status, and every
// answer that breaks a promise is kept as a problem. An answer is counted under the phase in
// which its request was sent. The problems:
//
//   - a 500, or any 5xx but 503 (a 503 too unless allow503);
//   - an acknowledged session lost: 401 for a session whose login answered 200 and that was not
//     logged out;
//   - a logged-out session still served (200) by the other server more than revokeWithin after
//     the logout answered 204, or not refused (401) within revokeBound at all;
//   - a request that got no answer.
//
// A 503 is retried after a pause; a logout answered 503 may or may not have happened, so the
// browser drops that session and starts over.
type load struct {
	a, b      *server
	users     []credentials
	transport *http.Transport
	allow503  bool
	// sessionLen is how long a browser keeps a session (GET /me in a loop) before logging out.
	sessionLen func() time.Duration
	// logins, when not nil, bounds the logins in flight (a semaphore).
	logins chan struct{}

	phase    atomic.Pointer[string]
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	requests atomic.Int64
	mu       sync.Mutex
	counts   map[string]map[string]int // phase → "POST /login 200" → answers
	lag      map[string]time.Duration  // phase → longest logout-to-401 on the other server
	problems []string
}

type credentials struct{ email, password string }

// Promises the load checks.
const (
	revokeWithin = time.Second      // the other server refuses a logged-out session within this
	revokeBound  = 15 * time.Second // ... or, while the database is down, at least within this
	retryPause   = 50 * time.Millisecond
)

func newLoad(a, b *server, users []credentials, clients int) *load {
	l := &load{
		a: a, b: b, users: users,
		transport: &http.Transport{MaxIdleConnsPerHost: clients, IdleConnTimeout: time.Minute},
		stop:      make(chan struct{}),
		counts:    map[string]map[string]int{},
		lag:       map[string]time.Duration{},
	}
	l.sessionLen = func() time.Duration { return 0 }
	l.setPhase("start")
	return l
}

func (l *load) setPhase(name string) { l.phase.Store(&name) }

// start starts n browsers; Stop stops them and waits.
func (l *load) start(n int) {
	for i := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for iter := 0; !l.stopped(); iter++ {
				l.browse(i, iter)
			}
		}()
	}
}

func (l *load) Stop() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.transport.CloseIdleConnections()
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *load) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 50 {
		l.problems = append(l.problems, *l.phase.Load()+": "+fmt.Sprintf(format, args...))
	}
}

// send sends one request for browser c (or with the cookie value when c is nil) and counts
// its answer under what. It returns 0 when no answer came.
func (l *load) send(c *http.Client, cookie, method, url, body, what string) int {
	phase := *l.phase.Load()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
	}
	if c == nil {
		c = &http.Client{Transport: l.transport, Timeout: 30 * time.Second}
	}
	l.requests.Add(1)
	resp, err := c.Do(req)
	status := 0
	if err != nil {
		l.problem("%s %s: no answer: %v", method, url, err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
		if status >= 500 && !(status == http.StatusServiceUnavailable && l.allow503) {
			l.problem("%s %s: %d", method, url, status)
		}
		if status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			l.problem("%s %s: 503 without Retry-After", method, url)
		}
	}
	l.mu.Lock()
	if l.counts[phase] == nil {
		l.counts[phase] = map[string]int{}
	}
	l.counts[phase][fmt.Sprintf("%s %d", what, status)]++
	l.mu.Unlock()
	return status
}

// pause waits d unless the load stops first; it reports whether the load goes on.
func (l *load) pause(d time.Duration) bool {
	select {
	case <-l.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// browse is one round of one browser: log in, use the session, log out, check the logout.
func (l *load) browse(i, iter int) {
	here, there := l.a, l.b
	if (i+iter)%2 == 1 {
		here, there = there, here
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: l.transport, Timeout: 30 * time.Second}
	u := l.users[(i+iter)%len(l.users)]

	if l.logins != nil {
		select {
		case l.logins <- struct{}{}:
		case <-l.stop:
			return
		}
	}
	status := l.send(c, "", "POST", here.URL+"/login", loginBody(u.email, u.password), "POST /login")
	if l.logins != nil {
		<-l.logins
	}
	switch status {
	case http.StatusOK:
	case http.StatusServiceUnavailable:
		l.pause(retryPause)
		return
	default:
		if status != 0 {
			l.problem("login %s: %d, want 200 (or 503)", u.email, status)
		}
		return
	}
	cookie := jarCookie(jar, here)
	if cookie == "" {
		l.problem("login %s: 200 without a session cookie", u.email)
		return
	}

	until := time.Now().Add(l.sessionLen())
	for k := 0; k < 2 || time.Now().Before(until); k++ {
		s := []*server{there, here}[k%2]
		switch status := l.send(c, "", "GET", s.URL+"/me", "", "GET /me"); status {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			if !l.pause(retryPause) {
				return
			}
		case http.StatusUnauthorized:
			l.problem("acknowledged session of %s lost: GET %s/me answered 401", u.email, s.URL)
			return
		default:
			return // counted, and a problem if it was a 5xx
		}
		if l.stopped() {
			return
		}
	}

	switch status := l.send(c, "", "POST", here.URL+"/logout", "", "POST /logout"); status {
	case http.StatusNoContent:
	case http.StatusUnauthorized:
		l.problem("acknowledged session of %s lost: POST %s/logout answered 401", u.email, here.URL)
		return
	default:
		l.pause(retryPause) // 503: the logout may or may not have happened
		return
	}
	ended := time.Now()
	for {
		sent := time.Now()
		status := l.send(nil, cookie, "GET", there.URL+"/me", "", "GET /me after logout")
		switch {
		case status == http.StatusUnauthorized:
			phase := *l.phase.Load()
			l.mu.Lock()
			l.lag[phase] = max(l.lag[phase], time.Since(ended))
			l.mu.Unlock()
			return
		case status == http.StatusOK && sent.Sub(ended) > revokeWithin:
			l.problem("session of %s logged out on %s still served by %s to a request sent %v later", u.email, here.URL, there.URL, sent.Sub(ended).Round(time.Millisecond))
			return
		case time.Since(ended) > revokeBound:
			l.problem("session of %s logged out on %s not refused by %s within %v", u.email, here.URL, there.URL, revokeBound)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// report logs the answers by phase, in the order the phases were given, and fails the test
// with the problems seen.
func (l *load) report(t *testing.T, phases ...string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d requests\n", l.requests.Load())
	for _, p := range phases {
		keys := make([]string, 0, len(l.counts[p]))
		for k := range l.counts[p] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "  %-10s", p)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s: %d;", k, l.counts[p][k])
		}
		if lag, ok := l.lag[p]; ok {
			fmt.Fprintf(&b, "  longest logout-to-401 on the other server: %v", lag.Round(time.Millisecond))
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
	for _, p := range l.problems {
		t.Error(p)
	}
}

// answers returns how many answers of the given status the load got, over every phase.
func (l *load) answers(status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	suffix := fmt.Sprintf(" %d", status)
	for _, m := range l.counts {
		for k, v := range m {
			if strings.HasSuffix(k, suffix) {
				n += v
			}
		}
	}
	return n
}

// jarCookie returns the session cookie jar holds for s, or "".
func jarCookie(jar http.CookieJar, s *server) string {
	u, err := url.Parse(s.URL)
	if err != nil {
		panic(err)
	}
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "session" {
			return ck.Value
		}
	}
	return ""
}
