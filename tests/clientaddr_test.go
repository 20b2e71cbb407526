package tests

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"

	"github.com/gofiber-template/sessions/app"
)

// TestForwardedForTakesRightmostUntrusted: behind proxies that append to X-Forwarded-For, the
// client address (the request line's client, what login throttling counts) is the rightmost
// address that is not a trusted proxy, never the leftmost, which the client wrote itself.
func TestForwardedForTakesRightmostUntrusted(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["TRUSTED_PROXIES"] = "127.0.0.1, 10.0.0.0/8"
	env["PROXY_HEADER"] = "X-Forwarded-For"
	s := startServer(t, env, app.Hooks{})
	c := newClient(t)
	for i, tt := range []struct {
		name   string
		header []string
		want   string
	}{
		{"the client's claim, then what the proxy saw", []string{"6.6.6.6, 192.0.2.7"}, "192.0.2.7"},
		{"two proxies", []string{"6.6.6.6, 192.0.2.7, 10.1.2.3"}, "192.0.2.7"},
		{"the proxy's own header line", []string{"6.6.6.6", "192.0.2.7"}, "192.0.2.7"},
		{"an unreadable chain: the peer", []string{"192.0.2.7, garbage"}, "127.0.0.1"},
		{"no header: the peer", nil, "127.0.0.1"},
	} {
		req, _ := http.NewRequest("GET", s.URL+"/healthz", nil)
		id := fmt.Sprintf("xff-%d", i)
		req.Header.Set("X-Request-Id", id)
		for _, v := range tt.header {
			req.Header.Add("X-Forwarded-For", v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		line := regexp.MustCompile(`msg=request request_id=` + id + ` .* client=(\S+)`).FindStringSubmatch(s.Log.String())
		if line == nil {
			t.Fatalf("%s: no request line for %s in\n%s", tt.name, id, s.Log.String())
		}
		if line[1] != tt.want {
			t.Errorf("%s: X-Forwarded-For %q gave client %s, want %s", tt.name, tt.header, line[1], tt.want)
		}
	}
}
