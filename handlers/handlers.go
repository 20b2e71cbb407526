// Package handlers holds the HTTP endpoints.
//
// A handler reads its input from the request, does its job, and either writes a response or
// returns an error. It never writes an error response itself: a *fiber.Error carries the status
// and message the client sees, and any other error becomes a 500 in app's ErrorHandler, which
// logs it. Handlers know nothing of how sessions are stored: they log users in and out through
// Sessions, and a protected handler finds its user with CurrentUser.
package handlers

import (
	"context"
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

// requestKey is the context key under which a request's context (WithRequestLog) finds itself.
type requestKey struct{}

// requestContext is what WithRequestLog returns: its parent plus what Logger needs, the server's
// logger and the request's id. The logger that carries the id is made only when a handler asks
// for it, so requests that log nothing of their own pay nothing for it. One value, allocated
// once per request, carries both the context and the log: it is never pooled, since a handler
// may hand the context to a goroutine that outlives the request.
type requestContext struct {
	context.Context
	base *slog.Logger
	id   string
}

func (c *requestContext) Value(key any) any {
	if key == (requestKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithRequestLog returns parent carrying the server's logger base and the request's id, for
// Logger and RequestID: the request's context, which only app's request-log middleware makes
// (and sets as c.UserContext()). It costs one allocation.
func WithRequestLog(parent context.Context, base *slog.Logger, id string) context.Context {
	return &requestContext{Context: parent, base: base, id: id}
}

// RequestID returns the request's id that ctx carries (WithRequestLog), as contexts derived from
// it do, and reports whether there is one. It allocates nothing.
func RequestID(ctx context.Context) (string, bool) {
	if r, ok := ctx.Value(requestKey{}).(*requestContext); ok {
		return r.id, true
	}
	return "", false
}

// Logger returns the request's logger, which adds the request's id (request_id) to every line.
// Outside a request that went through app's middleware it returns slog.Default(). It reads
// c.UserContext(): a handler that replaces it keeps the logger only with a context derived from
// the one it replaced.
func Logger(c *fiber.Ctx) *slog.Logger {
	if r, ok := c.UserContext().Value(requestKey{}).(*requestContext); ok {
		return r.base.With("request_id", r.id)
	}
	return slog.Default()
}
