package app

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber-template/sessions/internal/pgtest"
)

// TestHealthCommand runs `sessions health` against the real server, as a container's
// HEALTHCHECK does, with the server's own configuration.
func TestHealthCommand(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": pgtest.NewURL(t), "HOST": "127.0.0.1", "PORT": "0"}
	addr, cancel, done := serveForTest(t, vars)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	_, port, _ := net.SplitHostPort(addr)

	for _, host := range []string{"127.0.0.1", "", "0.0.0.0"} { // the last two mean the loopback address
		vars := map[string]string{"HOST": host, "PORT": port}
		out, err := run(t, vars, "", "health")
		if err != nil || !strings.Contains(out, "ready") {
			t.Errorf("health with HOST=%q: got %q, %v; want nil and the answer ready", host, out, err)
		}
	}
}

// TestHealthCommandFails checks that anything but a 200 from /readyz is a failure (exit 1), with
// stand-ins for a server that is not ready and for one that is not there.
func TestHealthCommandFails(t *testing.T) {
	t.Parallel()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			t.Errorf("health asked for %s, want /readyz", r.URL.Path)
		}
		http.Error(w, `{"error":"database unavailable"}`, http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	_, busyPort, _ := net.SplitHostPort(notReady.Listener.Addr().String())

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	for _, tt := range []struct {
		name, port, want string
	}{
		{"not ready", busyPort, "answered 503"},
		{"nothing listening", closedPort, "connection refused"},
		{"port 0", "0", "PORT=0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, map[string]string{"HOST": "127.0.0.1", "PORT": tt.port}, "", "health")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("health: got %q, %v; want an error saying %q", out, err, tt.want)
			}
		})
	}
}
