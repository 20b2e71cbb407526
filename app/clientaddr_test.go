package app

import (
	"net/netip"
	"testing"
)

func TestRightmostUntrusted(t *testing.T) {
	t.Parallel()
	trusted := Config{TrustedProxies: "127.0.0.1, 10.0.0.0/8, 2001:db8:ffff::/48"}.trustedPrefixes()
	tests := []struct {
		name   string
		values []string // the header's lines
		want   string   // "" for the zero Addr
	}{
		{"one client", []string{"192.0.2.1"}, "192.0.2.1"},
		{"the client's own claim is ignored", []string{"6.6.6.6, 192.0.2.1"}, "192.0.2.1"},
		{"trusted hops are skipped", []string{"6.6.6.6, 192.0.2.1, 10.1.2.3, 127.0.0.1"}, "192.0.2.1"},
		{"over several lines", []string{"6.6.6.6", "192.0.2.1", "10.1.2.3"}, "192.0.2.1"},
		{"spaces and tabs", []string{" 6.6.6.6 ,\t192.0.2.1 "}, "192.0.2.1"},
		{"with a port", []string{"192.0.2.1:4711, 10.0.0.1"}, "192.0.2.1"},
		{"IPv6", []string{"2001:db8::1, 2001:db8:ffff::2"}, "2001:db8::1"},
		{"IPv6 with a port", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"IPv4 in IPv6", []string{"::ffff:192.0.2.1"}, "192.0.2.1"},
		{"a trusted proxy mapped to IPv6 is still trusted", []string{"192.0.2.1, ::ffff:10.0.0.1"}, "192.0.2.1"},
		{"every hop trusted: the leftmost", []string{"10.0.0.7, 10.0.0.1"}, "10.0.0.7"},
		{"garbage left of the client does not matter", []string{"not an address, 192.0.2.1"}, "192.0.2.1"},
		{"garbage on the way names no one", []string{"192.0.2.1, unknown, 10.0.0.1"}, ""},
		{"an empty entry names no one", []string{"192.0.2.1,,10.0.0.1"}, ""},
		{"a zone names no one", []string{"fe80::1%eth0"}, ""},
		{"no header", nil, ""},
		{"an empty header", []string{""}, ""},
	}
	for _, tt := range tests {
		values := make([][]byte, len(tt.values))
		for i, v := range tt.values {
			values[i] = []byte(v)
		}
		got := rightmostUntrusted(values, trusted)
		var want netip.Addr
		if tt.want != "" {
			want = netip.MustParseAddr(tt.want)
		}
		if got != want {
			t.Errorf("%s: rightmostUntrusted(%q): got %v, want %v", tt.name, tt.values, got, want)
		}
	}
}
