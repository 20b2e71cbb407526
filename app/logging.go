package app

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/mattn/go-isatty"
	"github.com/valyala/fasthttp"

	"github.com/gofiber-template/sessions/handlers"
)

// newLogger returns the program's logger: LOG_FORMAT's handler (text on a terminal, JSON for
// log collectors when unset) at LOG_LEVEL, writing to w. Each Write to w holds whole lines, and no two
// Writes overlap; JSON request lines may be batched (lineWriter).
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if format == "text" {
		return slog.New(requestIDHandler{Handler: slog.NewTextHandler(w, opts)})
	}
	lw := &lineWriter{w: w}
	log := slog.New(requestIDHandler{Handler: slog.NewJSONHandler(lw, opts), lines: lw})
	lw.warn = func(n uint64) {
		log.Warn("request lines dropped: the log's reader fell behind", "count", n)
	}
	return log
}

// requestLines is the writer of log's request lines when newLogger made it with a JSON
// handler, else nil.
func requestLines(log *slog.Logger) *lineWriter {
	if h, ok := log.Handler().(requestIDHandler); ok {
		return h.lines
	}
	return nil
}

// requestLine is what the request line says of one request.
type requestLine struct {
	time                      time.Time
	id, method, route, client string
	peer                      netip.Addr // the client when client is ""
	status, bytes             int
	duration                  time.Duration
}

func (l *requestLine) clientString() string {
	if l.client == "" && l.peer.IsValid() {
		return l.peer.String()
	}
	return l.client
}

// record is l as a slog record, for handlers other than the JSON one of newLogger.
func (l *requestLine) record() slog.Record {
	// A record without a caller's PC: Logger.LogAttrs would walk the stack for one on every
	// request, and the line's source is always requestLog.
	r := slog.NewRecord(l.time, slog.LevelInfo, "request", 0)
	r.AddAttrs(
		slog.String("request_id", l.id),
		slog.String("method", l.method),
		slog.String("route", l.route),
		slog.Int("status", l.status),
		slog.Duration("duration", l.duration),
		slog.Int("bytes", l.bytes),
		slog.String("client", l.clientString()),
	)
	return r
}

// appendJSON appends l's line, byte for byte what slog's JSON handler (no options but the
// level) writes for l.record(), without reflection. It reports false when it cannot promise
// that: a string holding a byte slog escapes (a quote, a backslash, a control or non-ASCII
// byte), or a year outside 0 to 9999.
func (l *requestLine) appendJSON(b []byte) ([]byte, bool) {
	if y := l.time.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if !plainJSON(l.id) || !plainJSON(l.method) || !plainJSON(l.route) || !plainJSON(l.client) {
		return b, false
	}
	b = append(b, `{"time":"`...)
	b = l.time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","request_id":"`...)
	b = append(b, l.id...)
	b = append(b, `","method":"`...)
	b = append(b, l.method...)
	b = append(b, `","route":"`...)
	b = append(b, l.route...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(l.duration), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(l.bytes), 10)
	b = append(b, `,"client":"`...)
	if l.client == "" && l.peer.IsValid() {
		b = l.peer.AppendTo(b)
	} else {
		b = append(b, l.client...)
	}
	b = append(b, "\"}\n"...)
	return b, true
}

// plainJSON reports whether s is a JSON string's contents as it is: printable ASCII without
// quotes or backslashes, which slog writes unescaped.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// requestIDHandler adds request_id to every record logged with a request's context, so that a
// line written deep in the code (a refused login, a logout, a failed request) names its request
// as the request line does, without a logger handed down. A logger that already carries a
// request_id (handlers.Logger's) keeps its own.
type requestIDHandler struct {
	slog.Handler
	hasID bool        // a request_id among the attributes of WithAttrs
	lines *lineWriter // the JSON handler's writer, for requestLog; nil after WithAttrs, WithGroup
}

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.hasID {
		if id, ok := handlers.RequestID(ctx); ok {
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

var requestIDName = []byte(headerRequestID) // as fasthttp normalises it

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
	var b [32]byte // the prefix and 13 digits at most: one allocation, the string's
	return string(strconv.AppendUint(append(b[:0], requestIDPrefix...), requestIDs.Add(1), 36))
}

// routeUnmatched is the route of requests that matched none (404, 405), in the log and to the
// observers: their raw paths are the client's to choose and would grow any count without bound.
const routeUnmatched = "unmatched"

// requestLog is the outermost middleware. It gives each request an id (a well-formed incoming
// X-Request-Id, or a new one), sends it back in X-Request-Id, hands handlers a context carrying
// it with the logger (c.UserContext(), handlers.WithRequestLog: one allocation), which
// handlers.Logger and requestIDHandler read, and when the request is done writes one log line
// (method, route, status, duration, response size, client address, id) and tells observe
// (unless nil) of the request. viaProxy says whether c.IP() may be read from a proxy's header
// (Config.ProxyHeader with TrustedProxies); when not, the client is the connection's address,
// read without Fiber's trusted-proxy check.
//
// It turns an error from the chain into its response itself, through the app's ErrorHandler, so
// that the line and the observer see the status the client gets.
func requestLog(log *slog.Logger, observe func(method, route string, status int, elapsed time.Duration), viaProxy bool) fiber.Handler {
	h := log.Handler()
	lines := requestLines(log) // the request line encoded here, for newLogger's JSON
	return func(c *fiber.Ctx) error {
		start := c.Context().Time() // when fasthttp read the request: one clock read fewer
		if start.IsZero() {         // a RequestCtx no fasthttp.Server served
			start = time.Now()
		}
		middleware := c.Route() // the app-wide middleware, Fiber's one route for all of them
		id := c.Get(headerRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		} else {
			id = strings.Clone(id) // Fiber reuses the header's bytes
		}
		c.Response().Header.SetCanonical(requestIDName, []byte(id)) // copied: no allocation
		// One value carries the id for handlers.Logger and requestIDHandler: never pooled, since
		// a handler may hand the context to a goroutine that outlives the request.
		c.SetUserContext(handlers.WithRequestLog(c.UserContext(), log, id))

		if err := c.Next(); err != nil {
			if herr := c.App().Config().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}

		l := requestLine{id: id, method: requestMethod(c), route: c.Route().Path, status: c.Response().StatusCode()}
		if c.Route() == middleware { // no route of the table matched
			l.route = routeUnmatched
		}
		l.time = time.Now()
		l.duration = l.time.Sub(start)
		if h.Enabled(c.Context(), slog.LevelInfo) {
			l.bytes = len(c.Response().Body())
			if viaProxy {
				l.client = c.IP() // a proxy's header, in Fiber's buffer: copied below or written now
			} else {
				l.peer = remoteIP(c.Context())
			}
			if lines == nil || !lines.writeRequest(&l) {
				l.client = strings.Clone(l.client)
				_ = h.Handle(c.Context(), l.record()) // a log line that cannot be written is not the client's problem
			}
		}
		if observe != nil {
			observe(l.method, l.route, l.status, l.duration)
		}
		return nil
	}
}

// remoteIP is the address of ctx's peer, which c.IP() gives without a proxy.
func remoteIP(ctx *fasthttp.RequestCtx) netip.Addr {
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
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
