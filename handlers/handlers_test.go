package handlers_test

import (
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage/users"
)

// CurrentUser hands out a copy of the user SetUser was given.
func TestCurrentUserIsACopy(t *testing.T) {
	t.Parallel()
	ada := users.User{ID: 7, Email: "ada@example.com"}
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error {
		handlers.SetUser(c, &ada)
		u := handlers.CurrentUser(c)
		u.Email = "eve@example.com"
		return c.JSON(handlers.CurrentUser(c))
	})
	if status, body := send(t, app, "GET", "/", "", ""); status != 200 || body != `{"id":7,"email":"ada@example.com"}` {
		t.Errorf("got %d %s, want Ada unchanged", status, body)
	}
}
