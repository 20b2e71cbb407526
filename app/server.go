package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/helmet"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/app/users"
	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/internal/pgfault"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/web"
)

// HTTP limits. The body limit (Config.BodyLimit) covers every route; /login has its own,
// smaller one.
const (
	readTimeout  = 10 * time.Second // also bounds slow clients trickling headers
	writeTimeout = 10 * time.Second
	idleTimeout  = 2 * time.Minute // keep-alive connections
)

// newServer returns the HTTP server with every route, its sessions identified by ids. It does
// not listen.
func newServer(cfg Config, db *pgxpool.Pool, store *storage.Store, ids sessionIDs, m *metrics, h Hooks, log *slog.Logger) *fiber.App {
	srv := fiber.New(fiber.Config{
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           readTimeout,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           idleTimeout,
		DisableStartupMessage: true,
		ErrorHandler:          withSecurityHeaders(errorHandler(log)),
		// The client address (c.IP) is the connection's, or ProxyHeader's when the peer is one
		// of TrustedProxies; it is what login throttling counts per address.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          cfg.trustedProxies(),
		ProxyHeader:             cfg.ProxyHeader,
		EnableIPValidation:      true,
	})
	srv.Use(requestLog(log, m)) // first: it sees every request's final status
	srv.Use(recover.New())      // a bug in one handler is a 500, not a dead process
	srv.Use(helmet.New(securityHeaders))
	srv.Use(crossOrigin) // before every route: routes added later are covered too

	sess := newSessions(store, ids, cfg, h.Now, log)
	gate := users.NewGate(db, cfg.Login, ids.key, cfg.Store.QueryTimeout, h.Now, log, m.observeLogin)
	device := handlers.DeviceCookie{Name: deviceCookieName(cfg.CookieSecure), Secure: cfg.CookieSecure}
	guard := sess.Guard

	// The route table. A protected route is one line: the guard, then the handler.
	srv.Get("/healthz", handlers.Healthz)
	srv.Get("/readyz", handlers.Readyz(func(ctx context.Context) error { return pgfault.Ping(ctx, db) }))
	srv.Post("/login", handlers.Login(gate, sess, device))
	srv.Get("/me", guard, handlers.Me)
	srv.Post("/logout", guard, handlers.Logout(sess))
	srv.Post("/logout/all", guard, handlers.LogoutAll(sess))
	srv.Get("/sessions", guard, handlers.ListSessions(sess))
	srv.Delete("/sessions/:id", guard, handlers.EndSession(sess))
	web.Register(srv) // the demo page: GET /, /app.js, /app.css
	return srv
}

// deviceCookieName is the device cookie's name, __Host- prefixed when it is Secure, as
// cookieName is the session cookie's.
func deviceCookieName(secure bool) string {
	if secure {
		return "__Host-device"
	}
	return "device"
}

// securityHeaders go on every response: X-Content-Type-Options: nosniff, X-Frame-Options: DENY,
// Referrer-Policy: no-referrer, and helmet's other defaults (cross-origin isolation, among
// others).
var securityHeaders = helmet.Config{XFrameOptions: "DENY"}

// withSecurityHeaders gives the three headers that matter most to the error responses Fiber
// sends before any middleware runs (a malformed request, headers too large, a body over
// BODY_LIMIT announced by Content-Length), so that they too carry them.
func withSecurityHeaders(h fiber.ErrorHandler) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		if len(c.Response().Header.Peek(fiber.HeaderXContentTypeOptions)) == 0 {
			c.Set(fiber.HeaderXContentTypeOptions, helmet.ConfigDefault.ContentTypeNosniff)
			c.Set(fiber.HeaderXFrameOptions, securityHeaders.XFrameOptions)
			c.Set(fiber.HeaderReferrerPolicy, helmet.ConfigDefault.ReferrerPolicy)
		}
		return h(c, err)
	}
}

// retryAfter is the Retry-After, in seconds, of a 503 that did not set its own: about the time a
// restarted or failed-over PostgreSQL takes to answer again.
const retryAfter = "2"

// errorHandler is the one place where errors become HTTP responses, all shaped
// {"error": "message"}. An error of the users package gives the status handlers.UsersError
// says; a *fiber.Error anywhere in the chain gives its status and message; a
// session deleted under the request gives 401; a database that is unavailable or went away
// (pgfault.Unavailable: unreachable, too slow, restarting, shut down, read-only, out of
// connections) gives 503; anything else is a 500 whose details go to the log, never to the
// client. Every 503 carries Retry-After.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		code, msg := fiber.StatusInternalServerError, "internal server error"
		if ue := handlers.UsersError(c, err); ue != nil {
			err = ue
		}
		var fe *fiber.Error
		switch {
		case errors.As(err, &fe):
			code, msg = fe.Code, fe.Message
		case errors.Is(err, storage.ErrDeleted):
			code, msg = errLoginRequired.Code, errLoginRequired.Message
		case pgfault.Unavailable(err):
			code, msg = fiber.StatusServiceUnavailable, "service unavailable"
		}
		switch {
		case code == fiber.StatusServiceUnavailable:
			if len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
				c.Set(fiber.HeaderRetryAfter, retryAfter)
			}
			log.Warn("request failed", "method", c.Method(), "path", c.Path(), "status", code, "err", err,
				"request_id", c.GetRespHeader(headerRequestID))
		case code >= fiber.StatusInternalServerError:
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "status", code, "err", err,
				"request_id", c.GetRespHeader(headerRequestID))
		}
		return c.Status(code).JSON(fiber.Map{"error": msg})
	}
}
