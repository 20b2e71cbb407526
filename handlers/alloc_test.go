//go:build !race

// The race detector may change what allocates, so allocations are counted only without it.

package handlers_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage/users"
)

// What every guarded request pays here: recording its user and reading it back allocates
// nothing, its log context one allocation, and finding the request's id in it nothing.
func TestRequestValuesAllocations(t *testing.T) {
	app := fiber.New()
	c := app.AcquireCtx(&fasthttp.RequestCtx{})
	defer app.ReleaseCtx(c)
	ada := users.User{ID: 7, Email: "ada@example.com"}
	base := slog.New(slog.DiscardHandler)
	ctx := handlers.WithRequestLog(context.Background(), base, "req-1")
	for _, tt := range []struct {
		name string
		want float64
		f    func()
	}{
		{"SetUser and CurrentUser", 0, func() {
			handlers.SetUser(c, &ada)
			if handlers.CurrentUser(c).ID != 7 {
				t.Fatal("CurrentUser: not Ada")
			}
		}},
		{"WithRequestLog", 1, func() { c.SetUserContext(handlers.WithRequestLog(context.Background(), base, "req-1")) }},
		{"RequestID", 0, func() {
			if id, _ := handlers.RequestID(ctx); id != "req-1" {
				t.Fatal("RequestID: not req-1")
			}
		}},
	} {
		if got := testing.AllocsPerRun(100, tt.f); got != tt.want {
			t.Errorf("%s: %v allocations, want %v", tt.name, got, tt.want)
		}
	}
}
