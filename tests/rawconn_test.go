package tests

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawConn is one keep-alive TCP connection to a server, on which a test writes requests byte for
// byte, as no client library would let it, and reads the answers in order.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// dialRaw opens a rawConn to s; the test's end closes it.
func dialRaw(t *testing.T, s *server) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatalf("dial %s: %v", s.URL, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// exchange writes req and returns the answer to it and its body; the answer to a HEAD request
// has none. It fails the test if no answer comes within 15 s.
func (rc *rawConn) exchange(req string) (*http.Response, string) {
	rc.t.Helper()
	resp, body, err := rc.tryExchange(req)
	if err != nil {
		rc.t.Fatalf("%q: %v", req, err)
	}
	return resp, body
}

// tryExchange is exchange returning its error instead of failing the test.
func (rc *rawConn) tryExchange(req string) (*http.Response, string, error) {
	_ = rc.conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(rc.conn, req); err != nil {
		return nil, "", err
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(rc.r, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}
