package app

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/storage"
)

// BenchmarkMe measures a warm GET /me, guard included, through Fiber's handler without the
// network, next to a bare Fiber handler that writes the same JSON.
func BenchmarkMe(b *testing.B) {
	db, _ := pgtest.NewPool(b)
	cfg := DefaultConfig()
	cfg.TouchInterval = 24 * time.Hour / 100
	store, err := storage.New(context.Background(), db, cfg.storeConfig(time.Now))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := createUser(context.Background(), db, "ada@example.com", "the password"); err != nil {
		b.Fatal(err)
	}
	srv := newServer(cfg, db, store, Hooks{Now: time.Now}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	handler := srv.Handler()

	var login fasthttp.RequestCtx
	login.Request.Header.SetMethod("POST")
	login.Request.SetRequestURI("/login")
	login.Request.Header.SetContentType("application/json")
	login.Request.SetBodyString(`{"email":"ada@example.com","password":"the password"}`)
	handler(&login)
	if login.Response.StatusCode() != 200 {
		b.Fatalf("login: %d %s", login.Response.StatusCode(), login.Response.Body())
	}
	var cookie fasthttp.Cookie
	cookie.SetKey(cookieName)
	if !login.Response.Header.Cookie(&cookie) {
		b.Fatal("login set no cookie")
	}
	sid := string(cookie.Value())

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
	}{
		{"Guarded", handler},
		{"Bare", bare.Handler()},
	} {
		b.Run(bb.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI("/me")
				ctx.Request.Header.SetCookie(cookieName, sid)
				bb.handler(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("GET /me: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
