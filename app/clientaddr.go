package app

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// forwardedFor returns, when PROXY_HEADER is X-Forwarded-For and TRUSTED_PROXIES names some
// proxy, the middleware that makes c.IP() the client address the header's chain names; nil
// otherwise (Fiber then reads PROXY_HEADER itself).
//
// Each proxy appends the address it got the request from, so only the right end of the chain
// was written by proxies; the left end is whatever the client sent. The client is therefore the
// rightmost address that is not one of TRUSTED_PROXIES, not the leftmost that Fiber would take.
// For a request from a trusted proxy the middleware leaves X-Forwarded-For holding that one
// address, or removes it when the chain holds something that is not an address (c.IP() is then
// the proxy's own address: an unreadable chain names no one).
func (c Config) forwardedFor() fiber.Handler {
	if !strings.EqualFold(strings.TrimSpace(c.ProxyHeader), fiber.HeaderXForwardedFor) {
		return nil
	}
	trusted := c.trustedPrefixes()
	if len(trusted) == 0 {
		return nil
	}
	return func(ctx *fiber.Ctx) error {
		if ctx.IsProxyTrusted() {
			h := &ctx.Request().Header
			client := rightmostUntrusted(h.PeekAll(fiber.HeaderXForwardedFor), trusted)
			h.Del(fiber.HeaderXForwardedFor)
			if client.IsValid() {
				h.Set(fiber.HeaderXForwardedFor, client.String())
			}
		}
		return ctx.Next()
	}
}

// trustedPrefixes is TrustedProxies as address ranges (an address is a range of one). validate
// has refused what does not parse.
func (c Config) trustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.trustedProxies() {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pfx.Masked())
		} else if a, err := netip.ParseAddr(p); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// rightmostUntrusted returns the rightmost address of the X-Forwarded-For chain in values (the
// header's lines, in order) that no range of trusted holds; the leftmost when every one is
// trusted; the zero Addr when the chain is empty or, from its right end to that address, holds
// an entry that is not an address (bare, or with a port).
func rightmostUntrusted(values [][]byte, trusted []netip.Prefix) netip.Addr {
	var last netip.Addr
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for len(v) > 0 {
			entry := v
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				v = nil
			}
			a, ok := parseForwarded(strings.TrimSpace(string(entry)))
			if !ok {
				return netip.Addr{}
			}
			if !inPrefixes(a, trusted) {
				return a
			}
			last = a
		}
	}
	return last
}

// parseForwarded reads one entry of X-Forwarded-For: an address, or an address and port
// ("192.0.2.1:4711", "[2001:db8::1]:4711"), as some proxies write it.
func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func inPrefixes(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
