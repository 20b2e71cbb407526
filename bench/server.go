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
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/storage"
)

// serveApp is the server under test: the template's app.Run, exactly as main.go runs it, plus a
// control listener (store counters, pprof) that the bench reads. BENCH_STORE=memory keeps the
// sessions in storage.NewInMemory through app.Hooks.InMemoryStore: the same store and read path
// with no Postgres tier. It prints "READY addr ctl".
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
	inMemory := os.Getenv("BENCH_STORE") == "memory"
	h := app.Hooks{InMemoryStore: inMemory, Ready: func(addr string, s *storage.Store) {
		if inMemory {
			if err := seedMemory(ctx, s, os.Getenv("DATABASE_URL"), os.Getenv("BENCH_COOKIES")); err != nil {
				fmt.Fprintln(os.Stderr, "seed in-memory store:", err)
				os.Exit(1)
			}
		}
		store = s
		fmt.Printf("READY %s %s\n", addr, ctl.Addr())
	}}
	return app.Run(ctx, []string{"serve"}, os.LookupEnv, os.Stdin, os.Stdout, os.Stderr, h)
}

// seedMemory copies the sessions of the cookies listed in file from Postgres into the in-memory
// store, so memory-only runs use the same sessions without a login (argon2id) per session.
func seedMemory(ctx context.Context, mem *storage.Store, dbURL, file string) error {
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, c := range strings.Fields(string(b)) {
		var v []byte
		err := conn.QueryRow(ctx, "SELECT v FROM sessions WHERE k = encode(sha256(convert_to($1::text, 'UTF8')), 'hex')", c).Scan(&v)
		if err != nil {
			return fmt.Errorf("seed memory storage: %w", err)
		}
		if err := mem.Set(c, v, 24*time.Hour); err != nil {
			return err
		}
	}
	return nil
}

// serveBare is the ceiling: a Fiber app with the same /me response and no session at all.
func serveBare() error {
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
	srv := fiber.New(fiber.Config{DisableStartupMessage: true})
	type user struct {
		ID    int64  `json:"id"`
		Email string `json:"email"`
	}
	srv.Get("/me", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(user{ID: 1, Email: benchEmail})
	})
	go func() { <-ctx.Done(); _ = srv.Shutdown() }()
	fmt.Printf("READY %s %s\n", ln.Addr(), ctl.Addr())
	return srv.Listener(ln)
}
