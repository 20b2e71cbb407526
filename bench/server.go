package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // the control listener of a server under test serves CPU profiles
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/storage"
)

// serveApp is the server under test: the template's app.Run, exactly as main.go runs it, plus a
// control listener (store counters, pprof) that the bench reads. It prints "READY addr ctl".
func serveApp() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var store *storage.Store
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if store == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(store.Stats())
	})
	go func() { _ = http.Serve(ctl, nil) }()
	h := app.Hooks{Ready: func(addr string, s *storage.Store) {
		store = s
		fmt.Printf("READY %s %s\n", addr, ctl.Addr())
	}}
	return app.Run(ctx, []string{"serve"}, os.LookupEnv, os.Stdin, os.Stdout, os.Stderr, h)
}

// serveBare is the ceiling: a Fiber app with the same /me response and no session at all. With
// floor it also has the template's server timeouts (read, write, idle: per-request deadlines
// on the connection) and sends the same headers (the security headers, X-Request-Id, the
// request id's length): what no middleware can go below.
func serveBare(floor bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(ctl, nil) }()
	cfg := fiber.Config{DisableStartupMessage: true}
	if floor {
		cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout = 10*time.Second, 10*time.Second, 2*time.Minute
	}
	srv := fiber.New(cfg)
	type user struct {
		ID    int64  `json:"id"`
		Email string `json:"email"`
	}
	srv.Get("/me", func(c *fiber.Ctx) error {
		if floor {
			h := &c.Response().Header
			for i := 0; i+1 < len(floorHeaders); i += 2 {
				h.SetCanonical(floorHeaders[i], floorHeaders[i+1])
			}
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(user{ID: 1, Email: benchEmail})
	})
	go func() { <-ctx.Done(); _ = srv.Shutdown() }()
	fmt.Printf("READY %s %s\n", ln.Addr(), ctl.Addr())
	return srv.Listener(ln)
}

// floorHeaders are the headers the template's /me answers with besides Cache-Control, names
// as fasthttp normalises them, values as long as the template's.
var floorHeaders = func() [][]byte {
	var out [][]byte
	for _, s := range []string{
		"X-Xss-Protection", "0", "X-Content-Type-Options", "nosniff", "X-Frame-Options", "DENY",
		"Cross-Origin-Embedder-Policy", "require-corp", "Cross-Origin-Opener-Policy", "same-origin",
		"Cross-Origin-Resource-Policy", "same-origin", "Origin-Agent-Cluster", "?1",
		"Referrer-Policy", "no-referrer", "X-Dns-Prefetch-Control", "off", "X-Download-Options", "noopen",
		"X-Permitted-Cross-Domain-Policies", "none", "X-Request-Id", "ABCDEFGHIJ-1a2b3",
	} {
		out = append(out, []byte(s))
	}
	return out
}()
