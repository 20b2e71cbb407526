// optional: metrics file

package tests

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
)

// startScraped starts a server with its metrics listener on a free port and returns it and the
// listener's address.
func startScraped(t *testing.T, env map[string]string, hooks app.Hooks) (*server, string) {
	t.Helper()
	env["METRICS_ADDR"] = "127.0.0.1:0"
	metricsAddr := make(chan string, 1)
	hooks.MetricsReady = func(addr string) { metricsAddr <- addr }
	s := startServer(t, env, hooks)
	select {
	case addr := <-metricsAddr:
		return s, addr
	case <-time.After(10 * time.Second):
		t.Fatal("the metrics listener did not report its address")
		return nil, ""
	}
}

// TestMetricsAfterMixedKeepAliveTraffic sends requests of several methods, a made-up one
// among them, in turn over several keep-alive connections, then scrapes: the scrape answers 200,
// parses, and counts each request under its own method. A label that pointed into the buffer
// in which the server reads a connection's requests would read as the next request's method
// ("GETT", "POS") and make two series of one, and every scrape after it a 500.
func TestMetricsAfterMixedKeepAliveTraffic(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	s, maddr := startScraped(t, env, app.Hooks{})
	host := strings.TrimPrefix(s.URL, "http://")

	conns := []*rawConn{dialRaw(t, s), dialRaw(t, s), dialRaw(t, s)}
	requests := []struct {
		method, path, extra string
		status              int
	}{
		{"GET", "/healthz", "", 200},
		{"POST", "/login", "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 400},
		{"DELETE", "/sessions/x", "", 401},
		{"HEAD", "/healthz", "", 200},
		{"OPTIONS", "/me", "", 405},
		{"GETT", "/healthz", "", 400}, // not a method: Fiber refuses it before any middleware
		{"PUT", "/nope", "", 404},
		{"GET", "/me", "", 401},
	}
	const rounds = 3
	for round := range rounds {
		for i, rc := range conns {
			// Each connection starts the round at another request, so that at any moment the
			// connections' buffers hold different methods.
			for j := range requests {
				r := requests[(i+j+round)%len(requests)]
				extra := r.extra
				if extra == "" {
					extra = "\r\n"
				}
				resp, body := rc.exchange(fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%s", r.method, r.path, host, extra))
				if resp.StatusCode != r.status {
					t.Fatalf("%s %s: got %d %s, want %d", r.method, r.path, resp.StatusCode, body, r.status)
				}
				if resp.Close {
					t.Fatalf("%s %s: the server closed the connection; this test needs keep-alive", r.method, r.path)
				}
			}
		}
		samples := scrape(t, maddr) // fails unless 200 and every line parses
		want := float64(len(conns) * (round + 1))
		for _, name := range []string{
			`http_requests_total{method="GET",route="/healthz",status="200"}`,
			`http_requests_total{method="POST",route="/login",status="400"}`,
			`http_requests_total{method="DELETE",route="/sessions/:id",status="401"}`,
			`http_requests_total{method="HEAD",route="/healthz",status="200"}`,
			`http_requests_total{method="OPTIONS",route="unmatched",status="405"}`,
			`http_requests_total{method="PUT",route="unmatched",status="404"}`,
			`http_requests_total{method="GET",route="/me",status="401"}`,
		} {
			if got := samples[name]; got != want {
				t.Errorf("after round %d: %s = %v, want %v", round+1, name, got, want)
			}
		}
		methods := regexp.MustCompile(`method="([^"]*)"`)
		for name := range samples {
			for _, m := range methods.FindAllStringSubmatch(name, -1) {
				switch m[1] {
				case "GET", "POST", "DELETE", "HEAD", "OPTIONS", "PUT":
				default:
					t.Errorf("after round %d: sample %s has method %q, which no request sent", round+1, name, m[1])
				}
			}
		}
	}
}
