package tests

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
)

// connTimeout is the read timeout and the keep-alive idle timeout of the servers of the tests of
// the connections' timeouts, instead of 10 s and 2 m. A connection still open ten of them after
// it should have been cut is taken as never cut: a bound for a stuck test, not a measurement.
const connTimeout = time.Second

// startShortTimeouts starts a server whose read and keep-alive idle timeouts are connTimeout.
func startShortTimeouts(t *testing.T) *server {
	t.Helper()
	_, env := withUser(t)
	return startServer(t, env, app.Hooks{Config: func(c *app.Config) {
		c.ReadTimeout = connTimeout
		c.ConnIdleTimeout = connTimeout
	}})
}

// mustBeClosed reads conn until the server closes it and returns what it read; it fails the
// test if conn is still open 10 connTimeouts later.
func mustBeClosed(t *testing.T, conn net.Conn, what string) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * connTimeout))
	b, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: the connection is still open %v later (read %q), want it closed", what, 10*connTimeout, b)
	}
	// A reset is a close too: the server may close with unread bytes of the client's.
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("%s: read %q, then %v; want the server to close the connection", what, b, err)
	}
	return string(b)
}

// TestSlowClientCut: a client that sends part of a request line and then stalls, or trickles
// its headers a byte at a time, is cut once the read timeout is over: the server closes the
// connection, at most after answering 408.
func TestSlowClientCut(t *testing.T) {
	t.Parallel()
	s := startShortTimeouts(t)
	for _, tt := range []struct {
		name    string
		trickle bool
	}{{"stalled", false}, {"trickling", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := dialRaw(t, s)
			if _, err := io.WriteString(rc.conn, "GET /healthz HT"); err != nil {
				t.Fatal(err)
			}
			stopped := make(chan struct{})
			if tt.trickle {
				go func() {
					defer close(stopped)
					// A header that never ends, one byte every 50 ms, until the server closes
					// the connection or the test is over.
					if _, err := io.WriteString(rc.conn, "TP/1.1\r\nHost: a\r\nX-Slow: "); err != nil {
						return
					}
					for range 10 * connTimeout / (50 * time.Millisecond) {
						time.Sleep(50 * time.Millisecond)
						if _, err := rc.conn.Write([]byte{'a'}); err != nil {
							return
						}
					}
				}()
			} else {
				close(stopped)
			}
			got := mustBeClosed(t, rc.conn, "a "+tt.name+" request")
			<-stopped
			status, _, _ := strings.Cut(got, "\r\n")
			t.Logf("a %s request: the server answered %q and closed the connection", tt.name, status)
			if got != "" && !strings.HasPrefix(got, "HTTP/1.1 408 ") {
				t.Errorf("a %s request: the server answered %q before closing, want nothing or 408", tt.name, got)
			}
		})
	}
}

// TestIdleKeepAliveClosed: a keep-alive connection that sends no request after its first is
// closed once the idle timeout is over, with no answer.
func TestIdleKeepAliveClosed(t *testing.T) {
	t.Parallel()
	s := startShortTimeouts(t)
	rc := dialRaw(t, s)
	host := "Host: " + strings.TrimPrefix(s.URL, "http://") + "\r\n"
	if resp, _ := rc.exchange("GET /healthz HTTP/1.1\r\n" + host + "\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: got %d, want 200", resp.StatusCode)
	}
	if got := mustBeClosed(t, rc.conn, "an idle keep-alive connection"); got != "" {
		t.Errorf("an idle keep-alive connection: the server sent %q before closing, want nothing", got)
	}
}

// TestBusyKeepAliveStaysOpen: a keep-alive connection that sends a request every 50 ms stays
// open across several idle timeouts: each request moves the deadline the idle timeout set.
func TestBusyKeepAliveStaysOpen(t *testing.T) {
	t.Parallel()
	s := startShortTimeouts(t)
	rc := dialRaw(t, s)
	req := "GET /healthz HTTP/1.1\r\nHost: " + strings.TrimPrefix(s.URL, "http://") + "\r\n\r\n"
	n := 0
	for start := time.Now(); time.Since(start) < 3*connTimeout; n++ {
		resp, _, err := rc.tryExchange(req)
		if err != nil {
			t.Fatalf("request %d on a connection busy for %v: %v, want 200 on the same connection", n+1, time.Since(start), err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: got %d, want 200", n+1, resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d requests on one connection over %v", n, 3*connTimeout)
}
