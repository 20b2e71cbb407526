package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/app/users"
	"github.com/gofiber-template/sessions/handlers"
)

// These tests drive the handlers through stand-ins for Accounts and Sessions: what the handlers
// decide from the request alone. tests/ drives the real thing.

type fakeAccounts struct {
	err   error
	calls int
}

func (f *fakeAccounts) Authenticate(_ context.Context, email, password, _ string) (users.User, bool, error) {
	f.calls++
	if f.err != nil {
		return users.User{}, false, f.err
	}
	if email == "ada@example.com" && password == "right" {
		return users.User{ID: 7, Email: email}, true, nil
	}
	return users.User{}, false, nil
}

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
	handlers.SetUser(c, users.User{ID: 7, Email: "ada@example.com"})
	return c.Next()
}

func newApp(accounts handlers.Accounts, sessions handlers.Sessions) *fiber.App {
	app := fiber.New()
	app.Post("/login", handlers.Login(accounts, sessions))
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
			status, body := send(t, newApp(&fakeAccounts{}, sessions), "POST", "/login", tt.contentType, tt.body)
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
	status, body := send(t, newApp(&fakeAccounts{}, sessions), "POST", "/login",
		"application/json; charset=utf-8", `{"email": "ada@example.com", "password": "right"}`)
	if want := `{"id":7,"email":"ada@example.com"}`; status != 200 || body != want {
		t.Errorf("got %d %s, want 200 %s", status, body, want)
	}
	if want := (users.User{ID: 7, Email: "ada@example.com"}); len(sessions.started) != 1 || sessions.started[0] != want {
		t.Errorf("started %v, want one session for %v", sessions.started, want)
	}
}

func TestLoginAccountsFailure(t *testing.T) {
	t.Parallel()
	accounts := &fakeAccounts{err: errors.New("database down")}
	status, _ := send(t, newApp(accounts, &fakeSessions{}), "POST", "/login", "application/json",
		`{"email": "ada@example.com", "password": "right"}`)
	if status != 500 {
		t.Errorf("got %d, want 500", status)
	}
}

func TestLoginTryLater(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		want       int
		retryAfter string
	}{
		{"throttled", &users.TryLater{Throttled: true, After: 90*time.Second + time.Millisecond}, 429, "91"},
		{"busy", &users.TryLater{After: time.Second}, 503, "1"},
		{"under a second rounds up", &users.TryLater{Throttled: true, After: time.Millisecond}, 429, "1"},
		{"wrapped", fmt.Errorf("accounts: %w", &users.TryLater{After: 2 * time.Second}), 503, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sessions := &fakeSessions{}
			req := httptest.NewRequest("POST", "/login", strings.NewReader(`{"email": "ada@example.com", "password": "right"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := newApp(&fakeAccounts{err: tt.err}, sessions).Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want || resp.Header.Get("Retry-After") != tt.retryAfter {
				t.Errorf("got %d Retry-After %q, want %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"), tt.want, tt.retryAfter)
			}
			if len(sessions.started) != 0 {
				t.Errorf("started sessions %v, want none", sessions.started)
			}
		})
	}
}

func TestProtectedHandlers(t *testing.T) {
	t.Parallel()
	sessions := &fakeSessions{}
	app := newApp(&fakeAccounts{}, sessions)
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
	app := newApp(&fakeAccounts{}, &fakeSessions{})
	f.Fuzz(func(t *testing.T, body string) {
		status, _ := send(t, app, "POST", "/login", "application/json", body)
		if status >= 500 {
			t.Errorf("body %q: got %d, want under 500", body, status)
		}
	})
}
