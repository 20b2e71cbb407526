package app

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/mattn/go-isatty"

	"github.com/gofiber-template/sessions/handlers"
)

// newLogger returns the program's logger: LOG_FORMAT's handler (text on a terminal, JSON for
// log collectors when unset) at LOG_LEVEL, writing to w.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(requestIDHandler{Handler: h})
}

// requestContext is a request's context (c.UserContext() once requestLog has run): its parent
// plus the request's id, which requestIDHandler adds to every line logged with it.
type requestContext struct {
	context.Context
	id string
}

type requestIDKey struct{}

func (c requestContext) Value(key any) any {
	if key == (requestIDKey{}) {
		return c.id
	}
	return c.Context.Value(key)
}

// requestIDHandler adds request_id to every record logged with a request's context, so that a
// line written deep in the code (a refused login, a logout, a failed request) names its request
// as the request line does, without a logger handed down. A logger that already carries a
// request_id (handlers.Logger's) keeps its own.
type requestIDHandler struct {
	slog.Handler
	hasID bool // a request_id among the attributes of WithAttrs
}

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.hasID {
		if id, ok := ctx.Value(requestIDKey{}).(string); ok {
			r.AddAttrs(slog.String("request_id", id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := h.hasID
	for _, a := range attrs {
		has = has || a.Key == "request_id"
	}
	return requestIDHandler{Handler: h.Handler.WithAttrs(attrs), hasID: has}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{Handler: h.Handler.WithGroup(name), hasID: h.hasID}
}

// headerRequestID carries a request's id in both directions.
const headerRequestID = "X-Request-Id"

// validRequestID reports whether an incoming X-Request-Id may be kept: 1 to 64 letters, digits,
// dots, dashes and underscores, so that whatever a client sends cannot forge log lines or
// grow them without bound.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// requestIDPrefix makes this process's request ids unlike any other instance's: 10 random
// base32 characters, then a dash and a counter (newRequestID). Cheaper than 128 random bits per
// request, and as unique across instances in practice.
var (
	requestIDPrefix = rand.Text()[:10] + "-"
	requestIDs      atomic.Uint64
)

// newRequestID returns a request id unique to this process.
func newRequestID() string {
	return requestIDPrefix + strconv.FormatUint(requestIDs.Add(1), 36)
}

// routeUnmatched is the route of requests that matched none (404, 405), in the log and to the
// observers: their raw paths are the client's to choose and would grow any count without bound.
const routeUnmatched = "unmatched"

// requestLog is the outermost middleware. It gives each request an id (a well-formed incoming
// X-Request-Id, or a new one), sends it back in X-Request-Id, hands handlers a logger carrying it
// (handlers.Logger) and a context carrying it (c.UserContext(), which requestIDHandler reads), and when the request is done writes one log line (method, route, status,
// duration, response size, client address, id) and tells observe (unless nil) of the request.
//
// It turns an error from the chain into its response itself, through the app's ErrorHandler, so
// that the line and the observer see the status the client gets.
func requestLog(log *slog.Logger, observe func(method, route string, status int, elapsed time.Duration)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		middleware := c.Route() // the app-wide middleware, Fiber's one route for all of them
		id := c.Get(headerRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		} else {
			id = strings.Clone(id) // Fiber reuses the header's bytes
		}
		c.Set(headerRequestID, id)
		handlers.SetRequestLog(c, log, id)
		c.SetUserContext(requestContext{c.UserContext(), id})

		if err := c.Next(); err != nil {
			if herr := c.App().Config().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}

		route := c.Route().Path
		if c.Route() == middleware { // no route of the table matched
			route = routeUnmatched
		}
		status := c.Response().StatusCode()
		elapsed := time.Since(start)
		method := requestMethod(c)
		if h := log.Handler(); h.Enabled(c.Context(), slog.LevelInfo) {
			// A record without a caller's PC: Logger.LogAttrs would walk the stack for one on
			// every request, and the line's source is always this middleware.
			r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
			r.AddAttrs(
				slog.String("request_id", id),
				slog.String("method", method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Duration("duration", elapsed),
				slog.Int("bytes", len(c.Response().Body())),
				slog.String("client", strings.Clone(c.IP())), // a proxy's header, in Fiber's buffer
			)
			_ = h.Handle(c.Context(), r) // a log line that cannot be written is not the client's problem
		}
		if observe != nil {
			observe(method, route, status, elapsed)
		}
		return nil
	}
}

// requestMethod returns c's method as a constant string, "other" for one outside net/http's
// list. A value kept after the request (an observer's label, a log attribute) must never be
// c.Method() itself: that points into the buffer fasthttp reads the connection's next request
// into, so a label kept from it would turn from GET into the next method, and a counter would
// hold two series of one label set. The fixed list also bounds the labels' values.
func requestMethod(c *fiber.Ctx) string {
	switch c.Method() {
	case fiber.MethodGet:
		return fiber.MethodGet
	case fiber.MethodHead:
		return fiber.MethodHead
	case fiber.MethodPost:
		return fiber.MethodPost
	case fiber.MethodPut:
		return fiber.MethodPut
	case fiber.MethodPatch:
		return fiber.MethodPatch
	case fiber.MethodDelete:
		return fiber.MethodDelete
	case fiber.MethodConnect:
		return fiber.MethodConnect
	case fiber.MethodOptions:
		return fiber.MethodOptions
	case fiber.MethodTrace:
		return fiber.MethodTrace
	}
	return "other"
}
