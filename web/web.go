// Package web is the demo page GET / serves: one HTML file, one script and one style sheet,
// embedded in the binary (no build step). The page logs in, shows the current user from /me and
// logs out, all through the JSON API with fetch, so it runs under a Content-Security-Policy that
// allows no inline script or style. Replace it with your own front end, or delete the package
// and its one line in app's route table.
package web

import (
	"embed"

	"github.com/gofiber/fiber/v2"
)

//go:embed index.html app.js app.css
var files embed.FS

// ContentSecurityPolicy allows the page's own script, style sheet and fetches, and nothing else:
// no inline code, no other origin, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Register adds GET /, /app.js and /app.css to r. Browsers revalidate them on every load
// (no-cache), so a new deploy is seen at once.
func Register(r fiber.Router) {
	for path, f := range map[string]struct{ name, contentType string }{
		"/":        {"index.html", fiber.MIMETextHTMLCharsetUTF8},
		"/app.js":  {"app.js", "text/javascript; charset=utf-8"},
		"/app.css": {"app.css", "text/css; charset=utf-8"},
	} {
		body, err := files.ReadFile(f.name)
		if err != nil {
			panic("web: " + err.Error()) // go:embed guarantees the file: only a broken build gets here
		}
		r.Get(path, func(c *fiber.Ctx) error {
			c.Set(fiber.HeaderContentType, f.contentType)
			c.Set(fiber.HeaderCacheControl, "no-cache")
			c.Set(fiber.HeaderContentSecurityPolicy, ContentSecurityPolicy)
			return c.Send(body)
		})
	}
}
