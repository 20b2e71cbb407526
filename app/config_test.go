package app

import (
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatalf("LoadConfig with nothing set: %v", err)
	}
	want := DefaultConfig()
	want.TouchInterval = 168 * time.Hour / 100
	want.MemoryLimit = 32<<20 + 2*20<<20 + 2000*2<<10 // idle, two hashes, a full memory tier
	if !sameConfig(cfg, want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
	if cfg.DatabaseURL != "postgres://postgres@127.0.0.1:5432/sessions?sslmode=disable" || cfg.Port != 3000 ||
		cfg.Store.Capacity != 2000 || cfg.IdleTimeout != 168*time.Hour || !cfg.CookieSecure || !cfg.MigrateOnStart ||
		cfg.MaxLifetime != 720*time.Hour || cfg.BodyLimit != 16384 ||
		cfg.ReadTimeout != 10*time.Second || cfg.WriteTimeout != 10*time.Second || cfg.ConnIdleTimeout != 2*time.Minute {
		t.Errorf("defaults: got %+v, want the documented ones", cfg)
	}
}

func TestLoadConfigValues(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(env(map[string]string{
		"DATABASE_URL":           "postgres://app@db:5433/app",
		"LISTEN_DATABASE_URL":    "postgres://app@db-direct:5432/app",
		"MIGRATE_ON_START":       "false",
		"DB_QUERY_TIMEOUT":       "500ms",
		"HOST":                   "127.0.0.1",
		"PORT":                   "8080",
		"SHUTDOWN_TIMEOUT":       "3s",
		"SHUTDOWN_DRAIN":         "250ms",
		"HSTS_MAX_AGE":           "1h",
		"BODY_LIMIT":             "65536",
		"COOKIE_SECURE":          "false",
		"SESSION_IDLE_TIMEOUT":   "30m",
		"SESSION_MAX_LIFETIME":   "12h",
		"SESSION_CACHE_CAPACITY": "0",
		"LOG_LEVEL":              "debug",
		"LOG_FORMAT":             "json",
		"LOG_FLUSH_INTERVAL":     "250ms",
		"METRICS_ADDR":           "0.0.0.0:9100", // optional: metrics
		"LOGIN_HASH_SLOTS":       "3",
		"LOGIN_ACCOUNT_FAILURES": "7",
		"LOGIN_ADDRESS_FAILURES": "70",
		"LOGIN_HARD_LIMIT":       "50",
		"LOGIN_IPV4_PREFIX":      "24",
		"LOGIN_IPV6_PREFIX":      "56",
		"TRUSTED_PROXIES":        "10.0.0.1, 192.168.0.0/16",
		"PROXY_HEADER":           "X-Forwarded-For",
		"GOMEMLIMIT":             "256MiB",
	}))
	if err != nil {
		t.Fatal(err)
	}
	store := storage.DefaultConfig()
	store.ListenURL, store.QueryTimeout = "postgres://app@db-direct:5432/app", 500*time.Millisecond
	store.Capacity = 0
	login := users.DefaultConfig()
	login.HashSlots, login.AccountFailures, login.AddressFailures = 3, 7, 70
	login.HardLimit, login.IPv4Prefix, login.IPv6Prefix = 50, 24, 56
	want := Config{
		DatabaseURL: "postgres://app@db:5433/app", Store: store,
		MigrateOnStart: false, ConnectTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, ConnIdleTimeout: 2 * time.Minute, // fixed
		Host: "127.0.0.1", Port: 8080, ShutdownTimeout: 3 * time.Second, BodyLimit: 65536, CookieSecure: false,
		ShutdownDrain: 250 * time.Millisecond, HSTSMaxAge: time.Hour,
		IdleTimeout: 30 * time.Minute, MaxLifetime: 12 * time.Hour, TouchInterval: time.Minute, // 1/100 of the idle timeout, at least 1m
		LogLevel: slog.LevelDebug, LogFormat: "json", LogFlushInterval: 250 * time.Millisecond,
		MetricsAddr:    "0.0.0.0:9100", // optional: metrics
		Login:          login,
		TrustedProxies: "10.0.0.1, 192.168.0.0/16", ProxyHeader: "X-Forwarded-For",
		MemoryLimit: 256 << 20,
	}
	if !sameConfig(cfg, want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
	if got := cfg.trustedProxies(); len(got) != 2 || got[0] != "10.0.0.1" || got[1] != "192.168.0.0/16" {
		t.Errorf("trusted proxies: got %q, want [10.0.0.1 192.168.0.0/16]", got)
	}
}

// sameConfig reports whether a and b hold the same settings. It leaves out the store's clock,
// decoder and owner: no variable sets them (storeConfig does), and Go cannot compare functions.
func sameConfig(a, b Config) bool {
	for _, c := range []*Config{&a, &b} {
		c.Store.Now, c.Store.Decode, c.Store.Owner = nil, nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestDefaultTouchInterval(t *testing.T) {
	t.Parallel()
	tests := []struct{ idle, want time.Duration }{
		{168 * time.Hour, 168 * time.Hour / 100},
		{24 * time.Hour, 24 * time.Hour / 100},
		{time.Hour, time.Minute},             // 1/100 would be under a minute
		{90 * time.Second, 45 * time.Second}, // a minute would be most of the timeout
		{2 * time.Second, time.Second},
	}
	for _, tt := range tests {
		cfg, err := LoadConfig(env(map[string]string{"SESSION_IDLE_TIMEOUT": tt.idle.String()}))
		if err != nil {
			t.Fatalf("idle %v: %v", tt.idle, err)
		}
		if cfg.TouchInterval != tt.want {
			t.Errorf("touch interval for idle %v: got %v, want %v", tt.idle, cfg.TouchInterval, tt.want)
		}
	}
}

func TestLoadConfigRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		vars map[string]string
		want []string // every one must appear in the error
	}{
		{"port not a number", map[string]string{"PORT": "http"}, []string{`PORT="http"`}},
		{"port out of range", map[string]string{"PORT": "70000"}, []string{"PORT=70000"}},
		{"negative port", map[string]string{"PORT": "-1"}, []string{"PORT=-1"}},
		{"memory limit", map[string]string{"GOMEMLIMIT": "lots"}, []string{`GOMEMLIMIT="lots"`}},
		{"capacity negative", map[string]string{"SESSION_CACHE_CAPACITY": "-5"}, []string{"SESSION_CACHE_CAPACITY=-5"}},
		{"negative drain and max-age", map[string]string{"SHUTDOWN_DRAIN": "-1s", "HSTS_MAX_AGE": "-1h"}, []string{"SHUTDOWN_DRAIN=-1s", "HSTS_MAX_AGE=-1h0m0s"}},
		{"negative log flush interval", map[string]string{"LOG_FLUSH_INTERVAL": "-1ms"}, []string{"LOG_FLUSH_INTERVAL=-1ms"}},
		{"capacity not a number", map[string]string{"SESSION_CACHE_CAPACITY": "lots"}, []string{"SESSION_CACHE_CAPACITY"}},
		{"idle not a duration", map[string]string{"SESSION_IDLE_TIMEOUT": "7d"}, []string{`SESSION_IDLE_TIMEOUT="7d"`}},
		{"idle too short", map[string]string{"SESSION_IDLE_TIMEOUT": "500ms"}, []string{"SESSION_IDLE_TIMEOUT=500ms"}},
		{"max lifetime too short", map[string]string{"SESSION_MAX_LIFETIME": "0s"}, []string{"SESSION_MAX_LIFETIME=0s"}},
		{"max lifetime not a duration", map[string]string{"SESSION_MAX_LIFETIME": "30d"}, []string{`SESSION_MAX_LIFETIME="30d"`}},
		{"body limit under the login limit", map[string]string{"BODY_LIMIT": "1000"}, []string{"BODY_LIMIT=1000"}},
		{"body limit not a number", map[string]string{"BODY_LIMIT": "16KiB"}, []string{`BODY_LIMIT="16KiB"`}},
		{"cookie secure not a bool", map[string]string{"COOKIE_SECURE": "yes please"}, []string{`COOKIE_SECURE="yes please"`}},
		{"migrate not a bool", map[string]string{"MIGRATE_ON_START": "sometimes"}, []string{"MIGRATE_ON_START"}},
		{"database url", map[string]string{"DATABASE_URL": "postgres://h:notaport/db"}, []string{"DATABASE_URL"}},
		{"listen url", map[string]string{"LISTEN_DATABASE_URL": "postgres://h:notaport/db"}, []string{"LISTEN_DATABASE_URL"}},
		{"zero query timeout", map[string]string{"DB_QUERY_TIMEOUT": "0s"}, []string{"DB_QUERY_TIMEOUT=0s"}},
		{"zero shutdown timeout", map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, []string{"SHUTDOWN_TIMEOUT"}},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, []string{`LOG_LEVEL="loud"`}},
		{"log format", map[string]string{"LOG_FORMAT": "xml"}, []string{`LOG_FORMAT="xml"`}},
		{"no hash slots", map[string]string{"LOGIN_HASH_SLOTS": "0"}, []string{"LOGIN_HASH_SLOTS=0"}},
		{"zero account failures", map[string]string{"LOGIN_ACCOUNT_FAILURES": "0"}, []string{"LOGIN_ACCOUNT_FAILURES=0"}},
		{"negative address failures", map[string]string{"LOGIN_ADDRESS_FAILURES": "-1"}, []string{"LOGIN_ADDRESS_FAILURES=-1"}},
		{"hard limit over 100", map[string]string{"LOGIN_HARD_LIMIT": "101"}, []string{"LOGIN_HARD_LIMIT=101"}},
		{"zero hard limit", map[string]string{"LOGIN_HARD_LIMIT": "0"}, []string{"LOGIN_HARD_LIMIT=0"}},
		{"IPv4 prefix over 32", map[string]string{"LOGIN_IPV4_PREFIX": "33"}, []string{"LOGIN_IPV4_PREFIX=33"}},
		{"IPv6 prefix under 32", map[string]string{"LOGIN_IPV6_PREFIX": "16"}, []string{"LOGIN_IPV6_PREFIX=16"}},
		{"trusted proxy not an address", map[string]string{"TRUSTED_PROXIES": "10.0.0.1,proxy.local"}, []string{"TRUSTED_PROXIES", "proxy.local"}},
		{"trusted proxies without a header", map[string]string{"TRUSTED_PROXIES": "10.0.0.1", "PROXY_HEADER": " "}, []string{"PROXY_HEADER"}},
		{"several at once", map[string]string{"PORT": "x", "COOKIE_SECURE": "y", "SESSION_IDLE_TIMEOUT": "z"},
			[]string{"PORT", "COOKIE_SECURE", "SESSION_IDLE_TIMEOUT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadConfig(env(tt.vars))
			wantOneLineNaming(t, err, tt.want...)
		})
	}
}

func TestWithDotEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	if err := os.WriteFile(path, []byte("PORT=4000\nHOST=10.0.0.1\nLOG_FORMAT=\n# comment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup, err := withDotEnv(env(map[string]string{"PORT": "5000"}), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, want string
		wantSet    bool
	}{
		{"PORT", "5000", true},     // set in both: the environment wins
		{"HOST", "10.0.0.1", true}, // in .env only
		{"LOG_FORMAT", "", true},   // set empty in .env
		{"LOG_LEVEL", "", false},   // set nowhere
	} {
		if got, set := lookup(tt.name); got != tt.want || set != tt.wantSet {
			t.Errorf("%s: got %q, set %v; want %q, set %v", tt.name, got, set, tt.want, tt.wantSet)
		}
	}
	cfg, err := LoadConfig(lookup)
	if err != nil || cfg.Host != "10.0.0.1" || cfg.Port != 5000 {
		t.Errorf("LoadConfig: got HOST %q, PORT %d, %v; want 10.0.0.1, 5000", cfg.Host, cfg.Port, err)
	}

	if _, err := withDotEnv(env(nil), filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing .env: got %v, want no error", err)
	}
	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(bad, []byte("PORT='unterminated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := withDotEnv(env(nil), bad); err == nil {
		t.Errorf("malformed .env: got no error, want one")
	}
}

// wantOneLineNaming fails the test unless err is an error of one line that names every one of
// want: what start-up promises a person who mistyped a setting.
func wantOneLineNaming(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one naming %q", want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines, want one: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not name %s", msg, w)
		}
	}
}

func TestParseMemoryLimit(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want int64 // -1 for an error
	}{
		{"off", math.MaxInt64},
		{"0", -1},
		{"1048576", 1 << 20},
		{"512B", 512},
		{"64KiB", 64 << 10},
		{"96MiB", 96 << 20},
		{"2GiB", 2 << 30},
		{"1TiB", 1 << 40},
		{"96MB", -1}, // the runtime knows only binary units
		{"MiB", -1},
		{"-1MiB", -1},
		{"1.5GiB", -1},
		{"99999999999TiB", -1},
		{"Off", -1},
	} {
		got, err := parseMemoryLimit(tt.in)
		if tt.want == -1 {
			if err == nil {
				t.Errorf("parseMemoryLimit(%q): got %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseMemoryLimit(%q): got %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

// .env.example is what a user copies to .env: every value in it must be the default, and the
// configuration it gives must be the one with nothing set.
func TestEnvExampleIsTheDefaults(t *testing.T) {
	t.Parallel()
	lookup, err := withDotEnv(env(nil), "../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := LoadConfig(lookup)
	if err != nil {
		t.Fatalf(".env.example: %v", err)
	}
	defaults, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !sameConfig(fromFile, defaults) {
		t.Errorf(".env.example gives %+v, want the defaults %+v", fromFile, defaults)
	}
}
