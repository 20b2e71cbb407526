package tests

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
)

// FuzzHTTP sends arbitrary requests to the real server, on PostgreSQL, over a raw connection so
// that no client library tidies them up: the method, the path, extra header lines, the Cookie
// header and the body are the fuzzer's, and withSession adds a live session cookie so that
// inputs reach the code behind the guard. Whatever the request, the answer is never a 5xx, and
// the server never panics (recover would make a handler's panic a 500; any other panic ends the
// process). A request the server drops without an answer passes: that is not a 5xx.
//
// The fuzzer's logins are failures from this machine's address, and its session's own logins
// come from the same address: the server counts failures per address only past a limit no run
// reaches, and the session belongs to an account named at random, which no input can aim at.
// (The throttle's limits have tests of their own.) So a failure always means a bug, never the
// throttle doing its job.
//
// go test runs the seeds in testdata/fuzz/FuzzHTTP; go test -fuzz FuzzHTTP looks for more.
func FuzzHTTP(f *testing.F) {
	dbURL, env := withUser(f)
	fuzzEmail := "fuzz-" + rand.Text() + "@example.com"
	mustCreateUser(f, dbURL, fuzzEmail, password)
	env["LOGIN_ADDRESS_FAILURES"] = strconv.Itoa(math.MaxInt32)
	s := startServer(f, env, app.Hooks{})
	addr := strings.TrimPrefix(s.URL, "http://")
	var live string // fuzzEmail's session id; inputs may end it, so it is renewed when they do

	f.Fuzz(func(t *testing.T, method, path, headers, cookie string, body []byte, withSession bool) {
		if withSession && (live == "" || sessionStatus(t, s, live) != http.StatusOK) {
			live = loginCookie(t, s, fuzzEmail, password)
		}
		var req bytes.Buffer
		fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, addr)
		for line := range strings.SplitSeq(headers, "\n") {
			if line = strings.TrimSuffix(line, "\r"); line != "" {
				req.WriteString(line + "\r\n")
			}
		}
		if withSession {
			cookie = strings.TrimPrefix(cookie+"; session="+live, "; ")
		}
		if cookie != "" {
			req.WriteString("Cookie: " + cookie + "\r\n")
		}
		fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n", len(body))
		req.Write(body)

		status, err := rawExchange(addr, req.Bytes())
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no answer within 15s (the server's read timeout is 10s) for\n%q", req.String())
		}
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			t.Fatalf("cannot reach the server: %v", err)
		}
		if err != nil {
			return // dropped without an answer: not a 5xx
		}
		if status >= 500 {
			t.Errorf("got %d for\n%q", status, req.String())
		}
	})
}

// rawExchange writes req on a new connection to addr, closes the writing side, and returns the
// status of the final answer, after any 1xx (100 Continue): returning on a 1xx would leave the
// server working on a request nobody waits for. An answer that never comes within 15 s is an
// error wrapping os.ErrDeadlineExceeded.
func rawExchange(addr string, req []byte) (int, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	// Closing with a reset leaves no TIME_WAIT socket behind: thousands of executions a second
	// would otherwise use up the ephemeral ports, and dials would fail instead of testing.
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetLinger(0)
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := conn.Write(req); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	r := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 {
			return resp.StatusCode, nil
		}
	}
}

// sessionStatus returns the status of GET /me with the session id.
func sessionStatus(t *testing.T, s *server, id string) int {
	t.Helper()
	return me(t, withCookie(id), s)
}

// loginCookie logs in on s and returns the session id.
func loginCookie(t *testing.T, s *server, email, password string) string {
	t.Helper()
	resp := doResp(t, &http.Client{Timeout: 15 * time.Second}, "POST", s.URL+"/login", "application/json", loginBody(email, password))
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s: got %d %s, want 200", email, resp.StatusCode, body)
	}
	return findCookie(t, resp, "session").Value
}
