package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage"
)

// HTTP limits. The body limit covers every route; /login has its own, smaller one.
const (
	bodyLimit    = 1 << 20
	readTimeout  = 10 * time.Second // also bounds slow clients trickling headers
	writeTimeout = 10 * time.Second
	idleTimeout  = 2 * time.Minute // keep-alive connections
)

// newServer returns the HTTP server with every route. It does not listen.
func newServer(cfg Config, db *pgxpool.Pool, store *storage.Store, h Hooks, log *slog.Logger) *fiber.App {
	srv := fiber.New(fiber.Config{
		BodyLimit:             bodyLimit,
		ReadTimeout:           readTimeout,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           idleTimeout,
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(log),
		// The client address (c.IP) is the connection's, or ProxyHeader's when the peer is one
		// of TrustedProxies; it is what login throttling counts per address.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          cfg.trustedProxies(),
		ProxyHeader:             cfg.ProxyHeader,
		EnableIPValidation:      true,
	})
	srv.Use(recover.New()) // a bug in one handler is a 500, not a dead process

	sess := newSessions(store, cfg, h.Now, !h.InMemoryStore, log)
	users := newAccounts(db, cfg, h.Now, log)
	guard := sess.Guard

	// The route table. A protected route is one line: the guard, then the handler.
	srv.Get("/healthz", handlers.Healthz)
	srv.Get("/readyz", handlers.Readyz(db.Ping))
	srv.Post("/login", handlers.Login(users, sess))
	srv.Get("/me", guard, handlers.Me)
	srv.Post("/logout", guard, handlers.Logout(sess))
	srv.Post("/logout/all", guard, handlers.LogoutAll(sess))
	return srv
}

// errorHandler is the one place where errors become HTTP responses, all shaped
// {"error": "message"}. A *fiber.Error anywhere in the chain gives its status and message; a
// session deleted under the request gives 401; a database that cannot be reached or did not
// answer in time gives 503; anything else is a 500 whose details go to the log, never to the
// client.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		code, msg := fiber.StatusInternalServerError, "internal server error"
		var (
			fe         *fiber.Error
			connectErr *pgconn.ConnectError
		)
		switch {
		case errors.As(err, &fe):
			code, msg = fe.Code, fe.Message
		case errors.Is(err, storage.ErrDeleted):
			code, msg = errLoginRequired.Code, errLoginRequired.Message
		case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &connectErr):
			code, msg = fiber.StatusServiceUnavailable, "service unavailable"
		}
		if code >= fiber.StatusInternalServerError {
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "status", code, "err", err)
		}
		return c.Status(code).JSON(fiber.Map{"error": msg})
	}
}
