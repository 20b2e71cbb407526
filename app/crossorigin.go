package app

import (
	"net/url"

	"github.com/gofiber/fiber/v2"
)

var errCrossOrigin = fiber.NewError(fiber.StatusForbidden, "cross-origin request refused")

// crossOrigin refuses, with 403, every request from a browser on another site that could
// change state: any method but GET, HEAD and OPTIONS. It is the algorithm of Go 1.25's
// net/http.CrossOriginProtection, without its trusted origins and bypasses:
//
//   - Sec-Fetch-Site, sent by every current browser, decides when present: same-origin and none
//     (the user typed the address or used a bookmark) pass, same-site and cross-site are refused.
//   - Without it, an Origin whose host is not the request's Host (or that is "null") is refused.
//   - A request with neither header passes: it comes from a same-origin page of an old browser
//     or from a client that is not a browser (curl, an API client), which no other site can
//     make send a victim's cookie.
//
// Installed before the routes, it covers every route, those added later included. Safe methods
// must stay free of side effects for this to hold.
func crossOrigin(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	h := &c.Request().Header
	switch string(h.Peek("Sec-Fetch-Site")) {
	case "same-origin", "none":
		return c.Next()
	case "":
	default:
		return errCrossOrigin
	}
	origin := h.Peek(fiber.HeaderOrigin)
	if len(origin) == 0 {
		return c.Next()
	}
	// The host the request was sent to (its Host header, or the host of an absolute request
	// URI), not c.Hostname(), which a trusted proxy's X-Forwarded-Host could change. The
	// scheme is not compared (Host has none), as in Go's: HSTS covers a downgrade from https.
	o, err := url.Parse(string(origin))
	if err != nil || o.Host == "" || o.Host != string(c.Request().URI().Host()) {
		return errCrossOrigin
	}
	return c.Next()
}
