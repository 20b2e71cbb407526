package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage/users"
)

// These tests drive the handlers through stand-ins for the Gate and Sessions: what the handlers
// decide from the request alone. tests/ drives the real thing.

type fakeGate struct {
	err      error
	calls    int
	attempts []users.Attempt
}

func (f *fakeGate) Check(_ context.Context, a users.Attempt) (users.User, error) {
	f.calls++
	f.attempts = append(f.attempts, a)
	if f.err != nil {
		return users.User{}, f.err
	}
	if a.Email == "ada@example.com" && a.Password == "right" {
		return users.User{ID: 7, Email: a.Email}, nil
	}
	return users.User{}, users.ErrBadCredentials
}

func (f *fakeGate) Device(a users.Attempt) string { return "device-of-" + a.Email }

type fakeSessions struct {
	started, ended []users.User
	endedAll       []users.User
	list           []handlers.Session // Ada's
	endedOne       []string
}

func (f *fakeSessions) Start(_ *fiber.Ctx, u users.User) error {
	f.started = append(f.started, u)
	return nil
}

func (f *fakeSessions) End(*fiber.Ctx) error {
	f.ended = append(f.ended, users.User{})
	return nil
}

func (f *fakeSessions) EndAll(_ *fiber.Ctx, u users.User) error {
	f.endedAll = append(f.endedAll, u)
	return nil
}

func (f *fakeSessions) List(_ *fiber.Ctx, u users.User) ([]handlers.Session, error) {
	if u.ID != 7 {
		return nil, nil
	}
	return f.list, nil
}

func (f *fakeSessions) EndOne(_ *fiber.Ctx, u users.User, id string) (bool, error) {
	for _, s := range f.list {
		if u.ID == 7 && s.ID == id {
			f.endedOne = append(f.endedOne, id)
			return true, nil
		}
	}
	return false, nil
}

// fakeGuard lets every request in as Ada.
func fakeGuard(c *fiber.Ctx) error {
	handlers.SetUser(c, &users.User{ID: 7, Email: "ada@example.com"})
	return c.Next()
}

// testDevice is the device cookie of the tests' app.
var testDevice = handlers.DeviceCookie{Name: "device", Secure: true}

// newApp returns an app with the handlers under test and an error handler that maps the errors
// of the users package as app's does.
func newApp(gate handlers.Gate, sessions handlers.Sessions) *fiber.App {
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		if ue := handlers.UsersError(c, err); ue != nil {
			err = ue
		}
		return fiber.DefaultErrorHandler(c, err)
	}})
	app.Post("/login", handlers.Login(gate, sessions, testDevice))
	app.Get("/me", fakeGuard, handlers.Me)
	app.Post("/logout", fakeGuard, handlers.Logout(sessions))
	app.Post("/logout/all", fakeGuard, handlers.LogoutAll(sessions))
	app.Get("/sessions", fakeGuard, handlers.ListSessions(sessions))
	app.Delete("/sessions/:id", fakeGuard, handlers.EndSession(sessions))
	return app
}

func send(t *testing.T, app *fiber.App, method, path, contentType, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := app.Test(req, -1) // no 1 s default: password hashing is slow under -race
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLoginBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, contentType, body string
		want                    int
	}{
		{"malformed JSON", "application/json", `{"email": "ada@example.com", `, 400},
		{"not an object", "application/json", `"ada@example.com"`, 400},
		{"null", "application/json", `null`, 400},
		{"number for email", "application/json", `{"email": 5, "password": "right"}`, 400},
		{"empty email", "application/json", `{"email": "", "password": "right"}`, 400},
		{"empty password", "application/json", `{"email": "ada@example.com", "password": ""}`, 400},
		{"trailing garbage", "application/json", `{"email": "ada@example.com", "password": "right"} x`, 400},
		{"too large", "application/json", `{"email": "ada@example.com", "password": "` + strings.Repeat("x", handlers.MaxLoginBody) + `"}`, 413},
		{"form", "application/x-www-form-urlencoded", "email=ada@example.com&password=right", 415},
		{"text/plain JSON", "text/plain", `{"email": "ada@example.com", "password": "right"}`, 415},
		{"wrong password", "application/json", `{"email": "ada@example.com", "password": "wrong"}`, 401},
		{"unknown email", "application/json", `{"email": "bob@example.com", "password": "right"}`, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sessions := &fakeSessions{}
			status, body := send(t, newApp(&fakeGate{}, sessions), "POST", "/login", tt.contentType, tt.body)
			if status != tt.want {
				t.Errorf("got %d %s, want %d", status, body, tt.want)
			}
			if len(sessions.started) != 0 {
				t.Errorf("started sessions %v, want none", sessions.started)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	sessions := &fakeSessions{}
	gate := &fakeGate{}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"email": "ada@example.com", "password": "right"}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Real-IP", "203.0.113.9") // no proxy is trusted: not the address
	req.AddCookie(&http.Cookie{Name: "device", Value: "an old one"})
	resp, err := newApp(gate, sessions).Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":7`) {
		t.Errorf("got %d %s, want 200 with user 7", resp.StatusCode, body)
	}
	if want := (users.User{ID: 7, Email: "ada@example.com"}); len(sessions.started) != 1 || sessions.started[0] != want {
		t.Errorf("started %v, want one session for %v", sessions.started, want)
	}
	if want := (users.Attempt{Email: "ada@example.com", Password: "right", Address: "0.0.0.0", Device: "an old one"}); len(gate.attempts) != 1 || gate.attempts[0] != want {
		t.Errorf("attempts %+v, want %+v", gate.attempts, want)
	}
	var device *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "device" {
			device = ck
		}
	}
	switch {
	case device == nil:
		t.Fatalf("no device cookie in %q", resp.Header.Values("Set-Cookie"))
	case device.Value != "device-of-ada@example.com" || !device.HttpOnly || !device.Secure ||
		device.SameSite != http.SameSiteLaxMode || device.Path != "/" || device.MaxAge != int(handlers.DeviceLifetime/time.Second):
		t.Errorf("device cookie: got %q, want the gate's value, HttpOnly, Secure, SameSite=Lax, Path=/, Max-Age a year", device.Raw)
	}
}

// A failed login sets no device cookie.
func TestLoginFailedSetsNoDevice(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"email": "ada@example.com", "password": "wrong"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := newApp(&fakeGate{}, &fakeSessions{}).Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("got %d with cookies %q, want 401 and none", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
}

func TestLoginGateFailure(t *testing.T) {
	t.Parallel()
	gate := &fakeGate{err: errors.New("database down")}
	status, _ := send(t, newApp(gate, &fakeSessions{}), "POST", "/login", "application/json",
		`{"email": "ada@example.com", "password": "right"}`)
	if status != 500 {
		t.Errorf("got %d, want 500", status)
	}
}

// Every error of the users package has its status, wrapped or not, and Retry-After when it
// says when to come back.
func TestUsersErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		want       int
		retryAfter string
		message    string
	}{
		{"bad credentials", users.ErrBadCredentials, 401, "", "invalid email or password"},
		{"email taken", fmt.Errorf("%w: ada@example.com", users.ErrEmailTaken), 409, "", "already exists"},
		{"invalid email", fmt.Errorf("%w: not one", users.ErrInvalidEmail), 422, "", "not an email address"},
		{"weak password", &users.WeakPasswordError{Reason: "password too short: want at least 15 characters, got 3"}, 422, "", "want at least 15 characters"},
		{"throttled", &users.ThrottledError{RetryAfter: 90*time.Second + time.Millisecond}, 429, "91", "too many failed attempts"},
		{"busy", &users.BusyError{RetryAfter: time.Second}, 503, "1", "too busy"},
		{"under a second rounds up", &users.ThrottledError{RetryAfter: time.Millisecond}, 429, "1", ""},
		{"wrapped", fmt.Errorf("gate: %w", &users.BusyError{RetryAfter: 2 * time.Second}), 503, "2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sessions := &fakeSessions{}
			req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"email": "ada@example.com", "password": "right"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := newApp(&fakeGate{err: tt.err}, sessions).Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || resp.Header.Get("Retry-After") != tt.retryAfter || !strings.Contains(string(body), tt.message) {
				t.Errorf("got %d Retry-After %q %s, want %d Retry-After %q and a body saying %q",
					resp.StatusCode, resp.Header.Get("Retry-After"), body, tt.want, tt.retryAfter, tt.message)
			}
			if len(sessions.started) != 0 || len(resp.Cookies()) != 0 {
				t.Errorf("started sessions %v, cookies %q; want none", sessions.started, resp.Header.Values("Set-Cookie"))
			}
		})
	}
	if handlers.UsersError(nil, errors.New("something else")) != nil {
		t.Error("UsersError of an error of another package: got a status, want nil")
	}
}

func TestProtectedHandlers(t *testing.T) {
	t.Parallel()
	sessions := &fakeSessions{}
	app := newApp(&fakeGate{}, sessions)
	ada := users.User{ID: 7, Email: "ada@example.com"}

	if status, body := send(t, app, "GET", "/me", "", ""); status != 200 || body != `{"id":7,"email":"ada@example.com"}` {
		t.Errorf("GET /me: got %d %s, want 200 with Ada", status, body)
	}
	if status, _ := send(t, app, "POST", "/logout", "", ""); status != 204 || len(sessions.ended) != 1 {
		t.Errorf("POST /logout: got %d and %d sessions ended, want 204 and 1", status, len(sessions.ended))
	}
	if status, _ := send(t, app, "POST", "/logout/all", "", ""); status != 204 || len(sessions.endedAll) != 1 || sessions.endedAll[0] != ada {
		t.Errorf("POST /logout/all: got %d and %v, want 204 and Ada's sessions ended", status, sessions.endedAll)
	}
}

func TestCurrentUserWithoutGuard(t *testing.T) {
	t.Parallel()
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error { return c.JSON(handlers.CurrentUser(c)) })
	if status, body := send(t, app, "GET", "/", "", ""); status != 200 || body != `{"id":0,"email":""}` {
		t.Errorf("got %d %s, want the zero user", status, body)
	}
}

// FuzzLogin sends arbitrary bodies to /login: the answer is a 2xx or 4xx, never a 5xx or a
// panic.
func FuzzLogin(f *testing.F) {
	for _, seed := range []string{
		`{"email": "ada@example.com", "password": "right"}`,
		`{"email": "ada@example.com", "password": "wrong"}`,
		`{"email": "\u0000", "password": "\ud800"}`,
		`{"email": ["a"], "password": {}}`,
		`{`, ``, `null`, `[]`, `{"email":"a","password":"b","email":"c"}`,
	} {
		f.Add(seed)
	}
	app := newApp(&fakeGate{}, &fakeSessions{})
	f.Fuzz(func(t *testing.T, body string) {
		status, _ := send(t, app, "POST", "/login", "application/json", body)
		if status >= 500 {
			t.Errorf("body %q: got %d, want under 500", body, status)
		}
	})
}
