package storage

import "github.com/gofiber/fiber/v2"

// The store is a fiber.Storage; the package itself needs nothing else of Fiber, so the
// assertion lives here and storage imports no HTTP framework.
var _ fiber.Storage = (*Store)(nil)
