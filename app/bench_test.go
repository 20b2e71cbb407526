package app

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/helmet"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"
)

// BenchmarkMe measures a warm GET /me, guard included, through Fiber's handler without the
// network: on the tiered store (Tiered), and a bare Fiber handler that writes the same JSON
// (Bare).
func BenchmarkMe(b *testing.B) {
	db, cfg, ids, log, tiered := benchSetup(b)

	bare := fiber.New()
	bare.Get("/me", func(c *fiber.Ctx) error {
		return c.JSON(struct {
			ID    int64  `json:"id"`
			Email string `json:"email"`
		}{1, "ada@example.com"})
	})

	for _, bb := range []struct {
		name    string
		handler fasthttp.RequestHandler
		sid     string
		path    string
	}{
		{"Tiered", served(newServer(cfg, db, tiered, ids, observers{}, nil, Hooks{Now: time.Now}, log)), "", "/me"},
		// The same server with a /me that skips the guard: the cost of the session layer alone is
		// Tiered minus this (the request log, headers and checks are paid by every route).
		{"Unguarded", unguarded(newServer(cfg, db, tiered, ids, observers{}, nil, Hooks{Now: time.Now}, log)), "none", "/me-unguarded"},
		{"Bare", bare.Handler(), "none", "/me"},
	} {
		if bb.sid == "" {
			bb.sid = benchLogin(b, bb.handler)
		}
		b.Run(bb.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			loopCPU(b, func() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI(bb.path)
				ctx.Request.Header.SetCookie(cookieName(cfg.CookieSecure), bb.sid)
				bb.handler(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("GET /me: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			})
		})
	}
}

// served returns the handler srv's fasthttp server runs (guardServer's wrapper, when
// installed, around Fiber's), with the route tree built.
func served(srv *fiber.App) fasthttp.RequestHandler {
	_ = srv.Handler() // builds the route tree, as Listener does
	return srv.Server().Handler
}

// loopCPU runs f in b's loop and reports, besides ns/op, the process's CPU time per op
// (cpu-ns/op): on a machine shared with other work, the time the benchmark waited for a core
// counts in ns/op but not there.
func loopCPU(b *testing.B, f func()) {
	b.Helper()
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		f()
	}
	if cpu != 0 && b.N > 0 {
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	}
}

// benchSetup gives a benchmark (or a test) a fresh database with one user (ada@example.com), the default
// configuration with a touch interval a benchmark never reaches, the deployment's session ids, a
// JSON logger (the default off a terminal) that writes nothing, and a tiered store closed when
// the benchmark ends.
func benchSetup(b testing.TB) (*pgxpool.Pool, Config, sessionIDs, *slog.Logger, *storage.Store) {
	b.Helper()
	db, _ := pgtest.NewPool(b)
	cfg := DefaultConfig()
	cfg.TouchInterval = 24 * time.Hour / 100
	if _, err := (users.Store{DB: db, Timeout: time.Minute}).Create(context.Background(), "ada@example.com", "copper kettle on the stove", 15); err != nil {
		b.Fatal(err)
	}
	log := newLogger(Config{LogFormat: "json", LogLevel: slog.LevelInfo}, io.Discard) // the default format off a terminal
	ids, err := loadSessionIDs(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	store, err := storage.New(context.Background(), db, cfg.storeConfig(time.Now))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	return db, cfg, ids, log, store
}

// unguarded adds to the app's routes a GET /me-unguarded that answers like handlers.Me without
// the guard, and returns the app's handler.
func unguarded(srv *fiber.App) fasthttp.RequestHandler {
	srv.Get("/me-unguarded", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(users.User{ID: 1, Email: "ada@example.com"})
	})
	return served(srv)
}

// benchLogin logs in through handler and returns the session id.
func benchLogin(b testing.TB, handler fasthttp.RequestHandler) string {
	b.Helper()
	var login fasthttp.RequestCtx
	login.Request.Header.SetMethod("POST")
	login.Request.SetRequestURI("/login")
	login.Request.Header.SetContentType("application/json")
	login.Request.SetBodyString(`{"email":"ada@example.com","password":"copper kettle on the stove"}`)
	handler(&login)
	if login.Response.StatusCode() != 200 {
		b.Fatalf("login: %d %s", login.Response.StatusCode(), login.Response.Body())
	}
	var cookie fasthttp.Cookie
	cookie.SetKey(cookieName(true))
	if !login.Response.Header.Cookie(&cookie) {
		b.Fatal("login set no cookie")
	}
	return string(cookie.Value())
}

// BenchmarkSessionList measures GET /sessions, guard included, through Fiber's handler without
// the network: one query for the user's 5 sessions, each decoded, sorted and written as JSON.
func BenchmarkSessionList(b *testing.B) {
	db, cfg, ids, log, store := benchSetup(b)
	handler := served(newServer(cfg, db, store, ids, observers{}, nil, Hooks{Now: time.Now}, log))
	var sid string
	for range 5 {
		sid = benchLogin(b, handler)
	}
	var ctx fasthttp.RequestCtx
	loopCPU(b, func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI("/sessions")
		ctx.Request.Header.SetCookie(cookieName(cfg.CookieSecure), sid)
		handler(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("GET /sessions: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	})
}

// BenchmarkStack measures the warm GET /me of BenchmarkMe piece by piece: a bare Fiber app
// with the same handler, then that app with each piece of the server's stack added in turn,
// in newServer's order, ending with the guard (the whole server, newServer itself). Each
// piece's cost (ns/op, B/op, allocs/op) is its line minus the line before. The request line
// is JSON written to io.Discard (its encoding, without the system call); LogError is the
// whole server with LOG_LEVEL=error.
func BenchmarkStack(b *testing.B) {
	db, cfg, ids, _, store := benchSetup(b)
	logInfo := newLogger(Config{LogFormat: "json", LogLevel: slog.LevelInfo}, io.Discard)
	logError := newLogger(Config{LogFormat: "json", LogLevel: slog.LevelError}, io.Discard)
	// What the server tells of each request and login, as serve wires it.
	var obs observers
	m := newMetrics(store, db, nil)                                   // optional: metrics
	obs = observers{request: m.observeRequest, login: m.observeLogin} // optional: metrics
	me := func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(users.User{ID: 1, Email: "ada@example.com"})
	}
	// stack returns a Fiber app with the first n pieces of the stack and me on GET /me.
	stack := func(n int) fasthttp.RequestHandler {
		fc := fiber.Config{}
		if n >= 1 {
			fc = serverConfig(cfg, logInfo)
		}
		srv := fiber.New(fc)
		if n >= 2 {
			guardServer(srv.Server(), cfg.strictTransportSecurity())
		}
		switch {
		case n >= 4:
			srv.Use(requestLog(logInfo, obs.request, false))
		case n >= 3:
			srv.Use(requestLog(logInfo, nil, false))
		}
		if n >= 5 {
			srv.Use(recover.New())
		}
		if n >= 6 {
			srv.Use(crossOrigin)
		}
		srv.Get("/me", me)
		return served(srv)
	}
	full := served(newServer(cfg, db, store, ids, obs, nil, Hooks{Now: time.Now}, logInfo))
	sid := benchLogin(b, full)
	for _, bb := range []struct {
		name    string
		handler fasthttp.RequestHandler
	}{
		{"0-Bare", stack(0)},
		{"1-Config", stack(1)},      // serverConfig: trusted-proxy check, IP validation, error handler
		{"2-GuardServer", stack(2)}, // framing check, the security headers on every answer
		{"3-RequestLine", stack(3)}, // request id, its contexts, the JSON line
		{"4-Observers", stack(4)},   // the request's counter and latency histogram
		{"5-Recover", stack(5)},
		{"6-CrossOrigin", stack(6)}, // the cross-site check
		{"7-Guard", full},           // the session guard: newServer
		{"8-LogError", served(newServer(cfg, db, store, ids, obs, nil, Hooks{Now: time.Now}, logError))},
	} {
		b.Run(bb.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			loopCPU(b, func() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI("/me")
				ctx.Request.Header.SetCookie(cookieName(cfg.CookieSecure), sid)
				bb.handler(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("GET /me: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			})
		})
	}
}

// BenchmarkSecurityHeaders measures the security headers on a Fiber app's GET /: none (None),
// rendered once and set one by one around the app's handler (Rendered), copied from a header
// built once as guardServer does (Copied), and helmet's
// middleware setting them one by one (Helmet, what the server did before). A way's cost is its
// line minus None's.
func BenchmarkSecurityHeaders(b *testing.B) {
	app := func(mw ...fiber.Handler) fasthttp.RequestHandler {
		srv := fiber.New()
		for _, h := range mw {
			srv.Use(h)
		}
		srv.Get("/", func(c *fiber.Ctx) error { return c.SendString("ok") })
		return srv.Handler()
	}
	plain := app()
	copied := newSecurityHeader(&fasthttp.Server{}, nil)
	for _, bb := range []struct {
		name    string
		handler fasthttp.RequestHandler
	}{
		{"None", plain},
		{"Rendered", func(ctx *fasthttp.RequestCtx) {
			setSecurityFields(&ctx.Response.Header, nil)
			plain(ctx)
			setSecurityHeaders(&ctx.Response.Header, nil)
		}},
		{"Copied", func(ctx *fasthttp.RequestCtx) {
			copied.apply(&ctx.Response.Header)
			plain(ctx)
			setSecurityHeaders(&ctx.Response.Header, nil)
		}},
		{"Helmet", app(helmet.New(securityHeaders))},
	} {
		b.Run(bb.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			loopCPU(b, func() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI("/")
				bb.handler(&ctx)
			})
		})
	}
}

// BenchmarkSessionIDValid measures the signature check of a valid session id.
func BenchmarkSessionIDValid(b *testing.B) {
	ids := newSessionIDs(make([]byte, keyLen))
	id := ids.New()
	loopCPU(b, func() {
		if !ids.Valid(id) {
			b.Fatal("not valid")
		}
	})
}

// BenchmarkRequestLineWrite measures the request line's encoding and write, as requestLog does
// it, to each kind of standard error: nothing (Discard: the encoding alone), /dev/null (the
// system call alone), a regular file and a pipe read by another goroutine, each written line
// by line (LOG_FLUSH_INTERVAL=0) and batched as serve batches them (…Batched, flushed when
// full: the ticks of LOG_FLUSH_INTERVAL add one write per interval).
func BenchmarkRequestLineWrite(b *testing.B) {
	l := requestLine{time: time.Now(), id: "Q2WJ5XKDRA-1a2b3", method: "GET", route: "/me", status: 200,
		duration: 123456 * time.Nanosecond, bytes: 42, peer: netip.MustParseAddr("127.0.0.1")}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	file, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	defer pw.Close()
	for _, bb := range []struct {
		name  string
		w     io.Writer
		batch bool
	}{
		{"Discard", io.Discard, false}, {"DevNull", devNull, false}, {"File", file, false}, {"Pipe", pw, false},
		{"DevNullBatched", devNull, true}, {"FileBatched", file, true}, {"PipeBatched", pw, true},
	} {
		b.Run(bb.name, func(b *testing.B) {
			lw := &lineWriter{w: bb.w}
			if bb.batch {
				stop := lw.batch(nil)
				defer stop()
			}
			loopCPU(b, func() {
				if !lw.writeRequest(&l) {
					b.Fatal("not encoded")
				}
			})
		})
	}
}
