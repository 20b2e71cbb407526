package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/helmet"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/internal/pgfault"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"
	"github.com/gofiber-template/sessions/web" // optional: demo
)

// observers are told what the server counts: each request it answers and each login attempt.
// A nil one is told nothing, so the zero observers tell no one.
// metrics.go's Prometheus metrics are fed from them; optional: metrics
type observers struct {
	request func(method, route string, status int, elapsed time.Duration) // each answered request
	login   func(outcome string)                                          // each login attempt
}

// newServer returns the HTTP server with every route, its sessions identified by ids, telling
// obs what it counts; /readyz answers 503 while drain is set (a nil drain never is). It does
// not listen.
func newServer(cfg Config, db *pgxpool.Pool, store *storage.Store, ids sessionIDs, obs observers, drain *draining, h Hooks, log *slog.Logger) *fiber.App {
	srv := fiber.New(serverConfig(cfg, log))
	guardServer(srv.Server(), cfg.strictTransportSecurity())
	if fwd := cfg.forwardedFor(); fwd != nil {
		srv.Use(fwd) // before anything reads c.IP()
	}
	srv.Use(requestLog(log, obs.request, cfg.ProxyHeader != "" && len(cfg.trustedProxies()) > 0)) // first: it sees every request's final status
	srv.Use(recover.New())                                                                        // a bug in one handler is a 500, not a dead process
	srv.Use(crossOrigin)                                                                          // before every route: routes added later are covered too

	sess := newSessions(store, ids, cfg, h.Now, log)
	gate := users.NewGate(db, cfg.Login, ids.signingKey(), cfg.Store.QueryTimeout, h.Now, log, obs.login)
	device := handlers.DeviceCookie{Name: deviceCookieName(cfg.CookieSecure), Secure: cfg.CookieSecure}
	guard := sess.Guard

	// The route table. A protected route is one line: the guard, then the handler.
	srv.Get("/healthz", handlers.Healthz)
	srv.Get("/readyz", drain.refuse, handlers.Readyz(func(ctx context.Context) error { return pgfault.Ping(ctx, db) }))
	srv.Post("/login", handlers.Login(gate, sess, device))
	if cfg.Signup {
		srv.Get("/signup", handlers.SignUpOn)
		srv.Post("/signup", handlers.SignUp(gate, sess, device))
	}
	srv.Get("/me", guard, handlers.Me)
	srv.Post("/me/password", guard, handlers.ChangePassword(gate, sess, device))
	srv.Delete("/me", guard, handlers.DeleteAccount(gate, sess, device))
	srv.Post("/logout", guard, handlers.Logout(sess))
	srv.Post("/logout/all", guard, handlers.LogoutAll(sess))
	srv.Get("/sessions", guard, handlers.ListSessions(sess))
	srv.Delete("/sessions/:id", guard, handlers.EndSession(sess))
	web.Register(srv) // the demo page: GET /, /app.js, /app.css; optional: demo
	return srv
}

// serverConfig is the Fiber configuration of the server: its limits (the body limit covers every
// route; /login has its own, smaller one), its error handler and how it finds the client's
// address.
func serverConfig(cfg Config, log *slog.Logger) fiber.Config {
	return fiber.Config{
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.ConnIdleTimeout,
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(log),
		// The client address (c.IP) is the connection's, or ProxyHeader's when the peer is one
		// of TrustedProxies (for X-Forwarded-For, the rightmost address that is not one of
		// them: forwardedFor); it is what login throttling counts per address.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          cfg.trustedProxies(),
		ProxyHeader:             cfg.ProxyHeader,
		EnableIPValidation:      true,
	}
}

// draining is set at shutdown for SHUTDOWN_DRAIN: /readyz then answers 503, so that load
// balancers stop sending requests before the server stops accepting them, while every other
// route still serves. It is safe for concurrent use.
type draining struct{ atomic.Bool }

var errDraining = fiber.NewError(fiber.StatusServiceUnavailable, "shutting down")

// refuse is the first handler of /readyz: 503 while d is set.
func (d *draining) refuse(c *fiber.Ctx) error {
	if d != nil && d.Load() {
		return errDraining
	}
	return c.Next()
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
// others), as helmet's middleware would set them with this configuration.
var securityHeaders = helmet.Config{XFrameOptions: "DENY"}

// headerField is a response header's canonical name and value, as fasthttp writes them.
type headerField struct{ name, value []byte }

// securityFields are securityHeaders' fields, rendered once: helmet sets its eleven headers one
// by one on every response, each name normalised again.
var securityFields = renderHeaders(
	"X-XSS-Protection", helmet.ConfigDefault.XSSProtection,
	fiber.HeaderXContentTypeOptions, helmet.ConfigDefault.ContentTypeNosniff,
	fiber.HeaderXFrameOptions, securityHeaders.XFrameOptions,
	"Cross-Origin-Embedder-Policy", helmet.ConfigDefault.CrossOriginEmbedderPolicy,
	"Cross-Origin-Opener-Policy", helmet.ConfigDefault.CrossOriginOpenerPolicy,
	"Cross-Origin-Resource-Policy", helmet.ConfigDefault.CrossOriginResourcePolicy,
	"Origin-Agent-Cluster", helmet.ConfigDefault.OriginAgentCluster,
	fiber.HeaderReferrerPolicy, helmet.ConfigDefault.ReferrerPolicy,
	"X-DNS-Prefetch-Control", helmet.ConfigDefault.XDNSPrefetchControl,
	"X-Download-Options", helmet.ConfigDefault.XDownloadOptions,
	"X-Permitted-Cross-Domain-Policies", helmet.ConfigDefault.XPermittedCrossDomain,
)

// renderHeaders returns the fields of the name, value pairs in kv (those whose value is not
// ""), named as fasthttp normalises names.
func renderHeaders(kv ...string) []headerField {
	var h fasthttp.ResponseHeader
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			h.Set(kv[i], kv[i+1])
		}
	}
	var out []headerField
	for k, v := range h.All() {
		if !bytes.Equal(k, []byte(fiber.HeaderContentType)) { // fasthttp's default, not one of ours
			out = append(out, headerField{bytes.Clone(k), bytes.Clone(v)})
		}
	}
	return out
}

// securityHeader is a response header holding the security headers and nothing else, as
// fasthttp's server resets a response before each request: copied into a fresh response
// (apply), it gives it the headers without normalising, checking or looking up any of them
// again, which setting them one by one does for each.
type securityHeader struct {
	h    fasthttp.ResponseHeader // read only once built: copied from by many requests at once
	copy bool                    // whether apply copies h; otherwise it sets the fields
	hsts []byte
}

// newSecurityHeader returns the security headers of fs's responses, with
// Strict-Transport-Security when hsts is not empty. A copy carries the response's flags too,
// so h takes those fs gives a fresh response; one that cannot be taken (fs.NoDefaultDate, which
// fasthttp lets no one set) makes apply set the fields instead.
func newSecurityHeader(fs *fasthttp.Server, hsts []byte) *securityHeader {
	s := &securityHeader{copy: !fs.NoDefaultDate, hsts: hsts}
	s.h.SetNoDefaultContentType(fs.NoDefaultContentType)
	if fs.DisableHeaderNamesNormalizing {
		s.h.DisableNormalizing()
	}
	setSecurityFields(&s.h, hsts)
	return s
}

// apply gives h, a response's header that the handlers have not touched yet, the security
// headers.
func (s *securityHeader) apply(h *fasthttp.ResponseHeader) {
	if s.copy {
		s.h.CopyTo(h)
		return
	}
	setSecurityFields(h, s.hsts)
}

// setSecurityFields sets the security headers on h, and Strict-Transport-Security when hsts
// is not empty.
func setSecurityFields(h *fasthttp.ResponseHeader, hsts []byte) {
	for _, f := range securityFields {
		h.SetCanonical(f.name, f.value) // names as fasthttp normalises them: no copy normalised again
	}
	if len(hsts) > 0 {
		h.SetCanonical(hstsName, hsts)
	}
}

// setSecurityHeaders gives a response that lacks them (it has no X-Content-Type-Options) the
// security headers, and Strict-Transport-Security when hsts is not empty and it has none.
func setSecurityHeaders(h *fasthttp.ResponseHeader, hsts []byte) {
	if len(h.PeekBytes(nosniffName)) == 0 {
		for _, f := range securityFields {
			h.SetCanonical(f.name, f.value)
		}
	}
	if len(hsts) > 0 && len(h.PeekBytes(hstsName)) == 0 {
		h.SetCanonical(hstsName, hsts)
	}
}

var (
	nosniffName = []byte(fiber.HeaderXContentTypeOptions)
	hstsName    = []byte(fiber.HeaderStrictTransportSecurity)
)

// guardServer wraps the handlers of fs, Fiber's fasthttp server, which see every request
// before Fiber does:
//
//   - every response carries the security headers (setSecurityHeaders, with hsts), set before
//     the handlers run (a handler may set its own value of one) and again after for an answer
//     that lost them, Fiber's own answers included: its bare 400 for a method it does not know is written before any
//     middleware runs, and the errors of a request fasthttp could not read (malformed, headers
//     too large, a body over BODY_LIMIT announced by Content-Length) never reach one;
//   - a request fasthttp could not read gets 400 "malformed request", not fasthttp's message,
//     which quotes the request's first bytes: its cookies among them, which a script on the
//     page could read back from the answer though they are HttpOnly. Fiber still maps the
//     errors it knows (headers or body too large, timeouts) to their own statuses;
//   - a request framed by both Transfer-Encoding and Content-Length gets that 400 too and
//     reaches no handler: a proxy in front may have framed it by the other header (request
//     smuggling). fasthttp would follow Transfer-Encoding and close the connection after, as
//     RFC 9112 allows; refusing leaves nothing to reason about.
func guardServer(fs *fasthttp.Server, hstsValue string) {
	handle, refuse := fs.Handler, fs.ErrorHandler
	hsts := []byte(hstsValue)
	headers := newSecurityHeader(fs, hsts)
	fs.ErrorHandler = func(ctx *fasthttp.RequestCtx, err error) {
		if !strings.Contains(err.Error(), "timeout") { // Fiber's one test of the message
			err = malformedRequest{err}
		}
		refuse(ctx, err)
		setSecurityHeaders(&ctx.Response.Header, hsts)
	}
	fs.Handler = func(ctx *fasthttp.RequestCtx) {
		if ambiguousFraming(&ctx.Request.Header) {
			ctx.SetConnectionClose()
			fs.ErrorHandler(ctx, errAmbiguousFraming)
			return
		}
		headers.apply(&ctx.Response.Header) // fasthttp resets the response per request
		handle(ctx)
		setSecurityHeaders(&ctx.Response.Header, hsts) // in case the handlers reset it
	}
}

var errAmbiguousFraming = errors.New("app: both Transfer-Encoding and Content-Length")

// ambiguousFraming reports whether the request h heads came with Transfer-Encoding: chunked and
// a Content-Length as well. fasthttp keeps only the former, so the raw headers tell.
func ambiguousFraming(h *fasthttp.RequestHeader) bool {
	if h.ContentLength() != -1 { // -1: chunked
		return false
	}
	for raw := h.RawHeaders(); len(raw) > 0; {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(name), []byte(fiber.HeaderContentLength)) {
			return true
		}
	}
	return false
}

// malformedRequest is a framing error with a message that says nothing of the request; Fiber
// finds the errors it maps through Unwrap.
type malformedRequest struct{ err error }

func (malformedRequest) Error() string   { return "malformed request" }
func (e malformedRequest) Unwrap() error { return e.err }

// retryAfter is the Retry-After, in seconds, of a 503 that did not set its own: about the time a
// restarted or failed-over PostgreSQL takes to answer again.
const retryAfter = "2"

// errorHandler is the one place where errors become HTTP responses, all shaped
// {"error": "message"}. An error of the users package gives the status handlers.UsersError
// says; a *fiber.Error anywhere in the chain gives its status and message; a
// session deleted under the request gives 401; a database that is unavailable or went away
// (pgfault.Unavailable: unreachable, too slow, restarting, shut down, read-only, out of
// connections) gives 503; anything else is a 500 whose details go to the log, never to the
// client. Every 503 carries Retry-After. A cross-site refusal (crossOrigin) is logged as a
// security event.
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
		// The request's context carries its id into the line (requestIDHandler).
		ctx := c.UserContext()
		switch {
		case code == fiber.StatusServiceUnavailable:
			if len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
				c.Set(fiber.HeaderRetryAfter, retryAfter)
			}
			log.LogAttrs(ctx, slog.LevelWarn, "request failed", slog.String("method", requestMethod(c)),
				slog.String("path", strings.Clone(c.Path())), slog.Int("status", code), slog.Any("err", err))
		case code >= fiber.StatusInternalServerError:
			log.LogAttrs(ctx, slog.LevelError, "request failed", slog.String("method", requestMethod(c)),
				slog.String("path", strings.Clone(c.Path())), slog.Int("status", code), slog.Any("err", err))
		case errors.Is(err, errCrossOrigin):
			// A security event: what a page on another site made the browser send.
			h := &c.Request().Header
			log.LogAttrs(ctx, slog.LevelWarn, "cross-site request refused", slog.String("method", requestMethod(c)),
				slog.String("path", strings.Clone(c.Path())), slog.String("origin", string(h.Peek(fiber.HeaderOrigin))),
				slog.String("sec_fetch_site", string(h.Peek("Sec-Fetch-Site"))), slog.String("client", strings.Clone(c.IP())))
		}
		return c.Status(code).JSON(fiber.Map{"error": msg})
	}
}
