package app

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestUserAgent(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", maxUserAgent+10)
	tests := []struct{ name, in, want string }{
		{"plain", "Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (X11; Linux x86_64)"},
		{"empty", "", ""},
		{"too long", long, long[:maxUserAgent]},
		{"NUL and control characters", "a\x00b\tc\x1bd\u2028e", "abcde"},
		{"invalid UTF-8", "a\xffb\xc3", "ab"},
		{"cut on a character boundary", strings.Repeat("a", maxUserAgent-1) + "é", strings.Repeat("a", maxUserAgent-1)},
		{"multibyte kept", "Navigateur été", "Navigateur été"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := userAgent(tt.in)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(got) > maxUserAgent || !utf8.ValidString(got) {
				t.Errorf("got %d bytes, valid UTF-8 %v; want at most %d, valid", len(got), utf8.ValidString(got), maxUserAgent)
			}
		})
	}
}

// FuzzUserAgent: whatever a client sends, what is kept is valid UTF-8, printable and at most
// maxUserAgent bytes.
func FuzzUserAgent(f *testing.F) {
	for _, seed := range []string{"Mozilla/5.0", "a\x00b", "\xff\xfe", strings.Repeat("é", 200)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		got := userAgent(ua)
		if len(got) > maxUserAgent || !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Errorf("userAgent(%q) = %q: want valid UTF-8 without NUL, at most %d bytes", ua, got, maxUserAgent)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) {
				t.Errorf("userAgent(%q) kept %q", ua, r)
			}
		}
	})
}
