// Package handlers holds the HTTP endpoints.
//
// A handler reads its input from the request, does its job, and either writes a response or
// returns an error. It never writes an error response itself: a *fiber.Error carries the status
// and message the client sees, and any other error becomes a 500 in app's ErrorHandler, which
// logs it. Handlers know nothing of how sessions are stored: they log users in and out through
// Sessions, and a protected handler finds its user with CurrentUser.
package handlers

import (
	"log/slog"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/storage/users"
)

// userKey is the c.Locals key of the current user. An unexported type keeps other packages from
// reading or clobbering it by accident.
type userKey struct{}

// SetUser records *u as the user of the request. Only the guard middleware calls it, after it has
// checked the session. It keeps the pointer, which costs no allocation: *u must not change while
// any request that was handed it runs (the guard's users are those of decoded sessions, which
// never change).
func SetUser(c *fiber.Ctx, u *users.User) {
	// A plain pointer: Fiber closes any io.Closer left in Locals when the request ends.
	c.Locals(userKey{}, u)
}

// CurrentUser returns a copy of the user the guard found for this request. On a route without
// the guard it returns the zero users.User (ID 0), which no real user has.
func CurrentUser(c *fiber.Ctx) users.User {
	if u, _ := c.Locals(userKey{}).(*users.User); u != nil {
		return *u
	}
	return users.User{}
}

// requestKey is the c.Locals key of the request's logging context.
type requestKey struct{}

// requestLog is what Logger needs: the server's logger and the request's id. The logger that
// carries the id is made only when a handler asks for it, so requests that log nothing of their
// own pay nothing for it.
type requestLog struct {
	base *slog.Logger
	id   string
}

// SetRequestLog records the server's logger and the request's id. Only app's request-log
// middleware calls it.
func SetRequestLog(c *fiber.Ctx, base *slog.Logger, id string) {
	c.Locals(requestKey{}, requestLog{base, id})
}

// Logger returns the request's logger, which adds the request's id (request_id) to every line.
// Outside a request that went through app's middleware it returns slog.Default().
func Logger(c *fiber.Ctx) *slog.Logger {
	if r, ok := c.Locals(requestKey{}).(requestLog); ok {
		return r.base.With("request_id", r.id)
	}
	return slog.Default()
}
