package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
)

// readyTimeout bounds the database check of /readyz; a load balancer would rather hear "no" fast.
const readyTimeout = 2 * time.Second

// Healthz answers 200 while the process is up. It touches nothing else, so a slow database never
// makes an orchestrator restart a healthy process.
func Healthz(c *fiber.Ctx) error {
	return c.SendString("ok")
}

// Readyz answers 200 when ping (the database's) succeeds within two seconds and 503 otherwise,
// so a load balancer sends traffic only to instances that can serve it.
func Readyz(ping func(context.Context) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
		defer cancel()
		if err := ping(ctx); err != nil {
			return fmt.Errorf("%w: %w", fiber.NewError(fiber.StatusServiceUnavailable, "database unavailable"), err)
		}
		return c.SendString("ready")
	}
}
