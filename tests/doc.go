// Package tests holds the end-to-end tests: each starts the real server in-process, through the
// same app.Run as main, on a free port and a fresh PostgreSQL database of its own, and drives it
// over HTTP with a cookie jar, as a browser would. Run them with go test ./tests (they need the
// PostgreSQL server internal/pgtest describes).
package tests
