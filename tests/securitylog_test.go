package tests

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber-template/sessions/app"
)

// TestSecurityEventsCarryRequestID: the security log lines of a request (a cross-site refusal,
// a logout, a failed and a successful login) carry its request id, as its request line does, once each.
func TestSecurityEventsCarryRequestID(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	s := startServer(t, env, app.Hooks{})
	c := newClient(t)
	mustLogin(t, c, s, email, password)

	send := func(id, method, path string, header map[string]string, body ...string) int {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(strings.Join(body, "")))
		req.Header.Set("X-Request-Id", id)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		return resp.StatusCode
	}
	if got := send("sec-cross-site", "POST", "/logout", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); got != http.StatusForbidden {
		t.Fatalf("cross-site logout: got %d, want 403", got)
	}
	if got := send("sec-logout", "POST", "/logout", nil); got != http.StatusNoContent {
		t.Fatalf("logout: got %d, want 204", got)
	}
	json := map[string]string{"Content-Type": "application/json"}
	if got := send("sec-login-failure", "POST", "/login", json, loginBody(email, "not the password at all")); got != http.StatusUnauthorized {
		t.Fatalf("wrong password: got %d, want 401", got)
	}
	if got := send("sec-login", "POST", "/login", json, loginBody(email, password)); got != http.StatusOK {
		t.Fatalf("login: got %d, want 200", got)
	}

	lines := strings.Split(s.Log.String(), "\n")
	for _, tt := range []struct{ id, msg string }{
		{"sec-cross-site", `msg="cross-site request refused"`},
		{"sec-logout", "msg=logout"},
		{"sec-login-failure", "msg=login outcome=failure"},
		{"sec-login", "msg=login outcome=success"},
	} {
		var found string
		for _, l := range lines {
			if strings.Contains(l, tt.msg+" ") && strings.Contains(l, "request_id="+tt.id) || found == "" && strings.Contains(l, tt.msg+" ") {
				found = l
			}
		}
		if found == "" {
			t.Errorf("no %s line in\n%s", tt.msg, s.Log.String())
			continue
		}
		if n := len(regexp.MustCompile(`request_id=`).FindAllString(found, -1)); n != 1 || !strings.Contains(found, "request_id="+tt.id) {
			t.Errorf("%s line %q: want request_id=%s, once", tt.msg, found, tt.id)
		}
	}
}
