package handlers_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage/users"
)

// Logger is the server's logger with the request's id, found through the request's context and
// any context derived from it; without one it is slog.Default(). RequestID finds the same id.
func TestLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, nil))
	app := fiber.New()
	app.Get("/plain", func(c *fiber.Ctx) error {
		if handlers.Logger(c) != slog.Default() {
			t.Error("Logger outside app's middleware: not slog.Default()")
		}
		if id, ok := handlers.RequestID(c.UserContext()); ok || id != "" {
			t.Errorf("RequestID outside app's middleware: %q, %v; want none", id, ok)
		}
		return nil
	})
	app.Get("/logged", func(c *fiber.Ctx) error {
		c.SetUserContext(handlers.WithRequestLog(c.UserContext(), base, "req-1"))
		handlers.Logger(c).Info("from the request's context")
		ctx, cancel := context.WithCancel(c.UserContext()) // a handler's own, derived
		defer cancel()
		c.SetUserContext(ctx)
		handlers.Logger(c).Info("from a derived context")
		if id, ok := handlers.RequestID(ctx); !ok || id != "req-1" {
			t.Errorf("RequestID of a derived context: %q, %v; want req-1", id, ok)
		}
		return nil
	})
	for _, path := range []string{"/plain", "/logged"} {
		if status, body := send(t, app, "GET", path, "", ""); status != 200 {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines %q, want 2", len(lines), lines)
	}
	for _, l := range lines {
		if strings.Count(l, "request_id=req-1") != 1 {
			t.Errorf("line %q: want request_id=req-1 once", l)
		}
	}
}

// CurrentUser hands out a copy of the user SetUser was given.
func TestCurrentUserIsACopy(t *testing.T) {
	t.Parallel()
	ada := users.User{ID: 7, Email: "ada@example.com"}
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error {
		handlers.SetUser(c, &ada)
		u := handlers.CurrentUser(c)
		u.Email = "eve@example.com"
		return c.JSON(handlers.CurrentUser(c))
	})
	if status, body := send(t, app, "GET", "/", "", ""); status != 200 || body != `{"id":7,"email":"ada@example.com"}` {
		t.Errorf("got %d %s, want Ada unchanged", status, body)
	}
}
