package app

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

func TestCrossOrigin(t *testing.T) {
	t.Parallel()
	srv := fiber.New()
	srv.Use(crossOrigin)
	srv.All("/", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusNoContent) })

	const host = "app.example"
	tests := []struct {
		name, method, secFetchSite, origin string
		want                               int
	}{
		{"GET cross-site", "GET", "cross-site", "https://evil.example", 204},
		{"HEAD cross-site", "HEAD", "cross-site", "https://evil.example", 204},
		{"OPTIONS cross-site", "OPTIONS", "cross-site", "https://evil.example", 204},
		{"POST same-origin", "POST", "same-origin", "", 204},
		{"POST none (typed, bookmark)", "POST", "none", "", 204},
		{"POST same-site", "POST", "same-site", "https://sub.app.example", 403},
		{"POST cross-site", "POST", "cross-site", "https://evil.example", 403},
		{"PUT cross-site", "PUT", "cross-site", "", 403},
		{"PATCH cross-site", "PATCH", "cross-site", "", 403},
		{"DELETE cross-site", "DELETE", "cross-site", "", 403},
		{"unknown Sec-Fetch-Site", "POST", "something-new", "", 403},
		{"Sec-Fetch-Site wins over a matching Origin", "POST", "cross-site", "https://" + host, 403},
		{"Sec-Fetch-Site wins over a foreign Origin", "POST", "same-origin", "https://evil.example", 204},
		{"old browser, same origin", "POST", "", "https://" + host, 204},
		{"old browser, same origin over http", "POST", "", "http://" + host, 204},
		{"old browser, other host", "POST", "", "https://evil.example", 403},
		{"old browser, other port", "POST", "", "https://" + host + ":8443", 403},
		{"old browser, subdomain", "POST", "", "https://sub." + host, 403},
		{"old browser, null origin", "POST", "", "null", 403},
		{"old browser, unparsable origin", "POST", "", "https://%zz", 403},
		{"no header (curl, API clients)", "POST", "", "", 204},
		{"no header, DELETE", "DELETE", "", "", 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tt.method, "/", nil)
			req.Host = host // an absolute URI with no Host header is malformed HTTP/1.1
			if tt.secFetchSite != "" {
				req.Header.Set("Sec-Fetch-Site", tt.secFetchSite)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := srv.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// A request without a Host header cannot match an Origin with an empty host. (fasthttp refuses
// an HTTP/1.1 request without Host before any handler runs; this calls the middleware directly.)
func TestCrossOriginEmptyHost(t *testing.T) {
	t.Parallel()
	srv := fiber.New()
	fctx := &fasthttp.RequestCtx{}
	fctx.Request.Header.SetMethod(fiber.MethodPost)
	fctx.Request.SetRequestURI("/")
	fctx.Request.Header.Set(fiber.HeaderOrigin, "file://")
	c := srv.AcquireCtx(fctx)
	defer srv.ReleaseCtx(c)
	if err := crossOrigin(c); !errors.Is(err, errCrossOrigin) {
		t.Errorf("got %v, want %v", err, errCrossOrigin)
	}
}
