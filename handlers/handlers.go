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
)

// User is the logged-in user, as the session remembers it and as /login and /me return it.
type User struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

// userKey is the c.Locals key of the current user. An unexported type keeps other packages from
// reading or clobbering it by accident.
type userKey struct{}

// SetUser records u as the user of the request. Only the guard middleware calls it, after it has
// checked the session.
func SetUser(c *fiber.Ctx, u User) {
	// A plain value: Fiber closes any io.Closer left in Locals when the request ends.
	c.Locals(userKey{}, u)
}

// CurrentUser returns the user the guard found for this request. On a route without the guard it
// returns the zero User (ID 0), which no real user has.
func CurrentUser(c *fiber.Ctx) User {
	u, _ := c.Locals(userKey{}).(User)
	return u
}

// loggerKey is the c.Locals key of the request's logger.
type loggerKey struct{}

// SetLogger records l as the logger of the request. Only app's request-log middleware calls it.
func SetLogger(c *fiber.Ctx, l *slog.Logger) { c.Locals(loggerKey{}, l) }

// Logger returns the request's logger, which adds the request's id to every line. Outside a
// request that went through app's middleware it returns slog.Default().
func Logger(c *fiber.Ctx) *slog.Logger {
	if l, ok := c.Locals(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
