package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/joho/godotenv"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"
)

// Config is everything the program reads from its environment, and the fixed values next to
// them. A field that names a variable is read from it (.env.example lists them all, with their
// defaults); a field marked "fixed" keeps DefaultConfig's value, which is where to change it.
// LoadConfig is the only way to fill it.
type Config struct {
	DatabaseURL    string        // DATABASE_URL: the PostgreSQL server and database
	MigrateOnStart bool          // MIGRATE_ON_START: serve and user commands apply pending migrations first
	ConnectTimeout time.Duration // fixed (5s): how long start-up keeps trying to reach the database

	Host            string        // HOST: interface to listen on; "" = all
	Port            int           // PORT: TCP port; 0 = any free port
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT: how long requests in flight may take to finish on SIGTERM
	ShutdownDrain   time.Duration // SHUTDOWN_DRAIN: how long /readyz answers 503, while requests are still served, before the server stops accepting on SIGTERM
	BodyLimit       int           // BODY_LIMIT: largest request body, in bytes, on any route

	// Every connection's timeouts, each enforced at most 250ms late (coarseDeadlines).
	ReadTimeout     time.Duration // fixed (10s): how long a request may take to arrive, from its first byte or, on a new connection, from the accept: it bounds slow clients trickling headers
	WriteTimeout    time.Duration // fixed (10s): how long writing a response may take
	ConnIdleTimeout time.Duration // fixed (2m): how long a keep-alive connection may wait for its next request

	CookieSecure  bool          // COOKIE_SECURE: send the session cookie over HTTPS only
	Signup        bool          // SIGNUP: serve POST /signup, which lets anyone create an account
	HSTSMaxAge    time.Duration // HSTS_MAX_AGE: Strict-Transport-Security max-age while CookieSecure; 0 = no header
	IdleTimeout   time.Duration // SESSION_IDLE_TIMEOUT: a session ends after this long unused
	MaxLifetime   time.Duration // SESSION_MAX_LIFETIME: a session ends this long after login, however much it is used
	TouchInterval time.Duration // fixed (1/100 of IdleTimeout, 1m to IdleTimeout/2): least time between two refreshes of a session's expiry

	// Store is the session store's configuration, from storage.DefaultConfig. The environment
	// sets three of its fields; the rest keep their defaults (MaxAge, 10m: longest a session
	// stays in memory without a read; SweepInterval, 10s: how often expired sessions are
	// deleted), and storeConfig adds the clock, the decoder and the owner.
	//   Capacity      SESSION_CACHE_CAPACITY: sessions kept in memory; 0 = none
	//   ListenURL     LISTEN_DATABASE_URL: direct URL for LISTEN; "" = DATABASE_URL
	//   QueryTimeout  DB_QUERY_TIMEOUT: deadline of every database call, the store's and the app's
	Store storage.Config

	// MemoryLimit is GOMEMLIMIT, the Go runtime's soft memory limit that serve sets, in bytes
	// (math.MaxInt64 for off); unset, defaultMemoryLimit of the hashing slots and the cache.
	MemoryLimit int64

	LogLevel  slog.Level // LOG_LEVEL: debug, info, warn or error
	LogFormat string     // LOG_FORMAT: text or json; "" = text when standard error is a terminal, else json
	// LOG_FLUSH_INTERVAL: serve writes JSON request lines in batches, at least this often; 0 = each
	// before its response. Every other line is written at once.
	LogFlushInterval time.Duration
	MetricsAddr      string // METRICS_ADDR: address of the Prometheus /metrics listener; set empty to turn it off; optional: metrics

	// Login is the login gate's: LOGIN_HASH_SLOTS, LOGIN_ACCOUNT_FAILURES, LOGIN_ADDRESS_FAILURES,
	// LOGIN_HARD_LIMIT, LOGIN_IPV4_PREFIX and LOGIN_IPV6_PREFIX; the rest keep users.DefaultConfig's
	// values (passwords of 15 characters or more, NIST SP 800-63B-4; a wait of 500ms for a
	// hashing slot; throttles of 1m doubling to 15m, forgotten 15m after they end).
	Login users.Config

	TrustedProxies string // TRUSTED_PROXIES: comma-separated peers (IPs, CIDRs) whose ProxyHeader gives the client address
	ProxyHeader    string // PROXY_HEADER: header a trusted proxy puts the client address in

	SessionKeys sessionKeys // SESSION_KEYS or SESSION_KEYS_FILE: keys that sign session ids, the first signing; none = one kept in the database
}

// DefaultConfig returns the configuration used for every variable left unset. TouchInterval is
// 0 here: LoadConfig derives it from IdleTimeout (see defaultTouchInterval).
func DefaultConfig() Config {
	return Config{
		DatabaseURL:      "postgres://postgres@127.0.0.1:5432/sessions?sslmode=disable",
		MigrateOnStart:   true,
		ConnectTimeout:   5 * time.Second,
		Port:             3000,
		ShutdownTimeout:  10 * time.Second,
		ShutdownDrain:    5 * time.Second,
		BodyLimit:        16 << 10,
		ReadTimeout:      10 * time.Second,
		WriteTimeout:     10 * time.Second,
		ConnIdleTimeout:  2 * time.Minute,
		CookieSecure:     true,
		HSTSMaxAge:       365 * 24 * time.Hour,
		IdleTimeout:      7 * 24 * time.Hour,
		MaxLifetime:      30 * 24 * time.Hour,
		Store:            storage.DefaultConfig(),
		LogLevel:         slog.LevelInfo,
		LogFlushInterval: 100 * time.Millisecond,
		MetricsAddr:      "127.0.0.1:9091", // optional: metrics
		Login:            users.DefaultConfig(),
		ProxyHeader:      "X-Real-IP",
	}
}

// defaultTouchInterval is 1/100 of the idle timeout, so a session in steady use costs at most one
// write per hundredth of its lifetime, but at least a minute (cheap enough for any traffic) and
// at most half the idle timeout (so that a short timeout still slides).
func defaultTouchInterval(idle time.Duration) time.Duration {
	return min(max(idle/100, time.Minute), idle/2)
}

// LoadConfig reads the configuration through lookupEnv (os.LookupEnv's shape), where an empty
// value means unset unless the code reading a variable says otherwise. It reports every bad
// variable, by name, in one single-line error.
func LoadConfig(lookupEnv func(string) (string, bool)) (Config, error) {
	cfg := DefaultConfig()
	p := envParser{lookup: lookupEnv}
	parseVar(&p, "DATABASE_URL", parseString, &cfg.DatabaseURL)
	parseVar(&p, "LISTEN_DATABASE_URL", parseString, &cfg.Store.ListenURL)
	parseVar(&p, "MIGRATE_ON_START", parseBool, &cfg.MigrateOnStart)
	parseVar(&p, "DB_QUERY_TIMEOUT", parseDuration, &cfg.Store.QueryTimeout)
	parseVar(&p, "HOST", parseString, &cfg.Host)
	parseVar(&p, "PORT", parseInt, &cfg.Port)
	parseVar(&p, "SHUTDOWN_TIMEOUT", parseDuration, &cfg.ShutdownTimeout)
	parseVar(&p, "SHUTDOWN_DRAIN", parseDuration, &cfg.ShutdownDrain)
	parseVar(&p, "BODY_LIMIT", parseInt, &cfg.BodyLimit)
	parseVar(&p, "COOKIE_SECURE", parseBool, &cfg.CookieSecure)
	parseVar(&p, "SIGNUP", parseBool, &cfg.Signup)
	parseVar(&p, "HSTS_MAX_AGE", parseDuration, &cfg.HSTSMaxAge)
	parseVar(&p, "SESSION_IDLE_TIMEOUT", parseDuration, &cfg.IdleTimeout)
	parseVar(&p, "SESSION_MAX_LIFETIME", parseDuration, &cfg.MaxLifetime)
	parseVar(&p, "SESSION_CACHE_CAPACITY", parseInt, &cfg.Store.Capacity)
	parseVar(&p, "LOG_LEVEL", parseLevel, &cfg.LogLevel)
	parseVar(&p, "LOG_FORMAT", parseLogFormat, &cfg.LogFormat)
	parseVar(&p, "LOG_FLUSH_INTERVAL", parseDuration, &cfg.LogFlushInterval)
	// optional: metrics begin
	// Unlike the others, METRICS_ADDR set to "" means something: no metrics listener.
	if v, set := lookupEnv("METRICS_ADDR"); set {
		cfg.MetricsAddr = v
	}
	// optional: metrics end
	parseVar(&p, "LOGIN_HASH_SLOTS", parseInt, &cfg.Login.HashSlots)
	parseVar(&p, "LOGIN_ACCOUNT_FAILURES", parseInt, &cfg.Login.AccountFailures)
	parseVar(&p, "LOGIN_ADDRESS_FAILURES", parseInt, &cfg.Login.AddressFailures)
	parseVar(&p, "LOGIN_HARD_LIMIT", parseInt, &cfg.Login.HardLimit)
	parseVar(&p, "LOGIN_IPV4_PREFIX", parseInt, &cfg.Login.IPv4Prefix)
	parseVar(&p, "LOGIN_IPV6_PREFIX", parseInt, &cfg.Login.IPv6Prefix)
	parseVar(&p, "TRUSTED_PROXIES", parseString, &cfg.TrustedProxies)
	parseVar(&p, "PROXY_HEADER", parseString, &cfg.ProxyHeader)
	if keys, err := readSessionKeys(lookupEnv); err != nil {
		p.errs = append(p.errs, err.Error())
	} else {
		cfg.SessionKeys = keys
	}
	if cfg.TouchInterval == 0 {
		cfg.TouchInterval = defaultTouchInterval(cfg.IdleTimeout)
	}
	parseVar(&p, "GOMEMLIMIT", parseMemoryLimit, &cfg.MemoryLimit)
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = defaultMemoryLimit(cfg.Login.HashSlots, cfg.Store.Capacity)
	}
	errs := append(p.errs, cfg.validate()...)
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

// validate returns one message per bad field, each starting with the variable's name. Fields
// that failed to parse keep their default and pass.
func (c Config) validate() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		bad("DATABASE_URL is not a PostgreSQL URL: %v", oneLine(err))
	}
	if c.Store.ListenURL != "" {
		if _, err := pgx.ParseConfig(c.Store.ListenURL); err != nil {
			bad("LISTEN_DATABASE_URL is not a PostgreSQL URL: %v", oneLine(err))
		}
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("PORT=%d is out of range 0-65535", c.Port)
	}
	if c.BodyLimit < handlers.MaxLoginBody {
		bad("BODY_LIMIT=%d is under %d, the largest login body", c.BodyLimit, handlers.MaxLoginBody)
	}
	if c.Store.Capacity < 0 {
		bad("SESSION_CACHE_CAPACITY=%d is negative; 0 turns the memory tier off", c.Store.Capacity)
	}
	// Fiber's cookie Max-Age and the sessions table count whole seconds.
	if c.IdleTimeout < time.Second {
		bad("SESSION_IDLE_TIMEOUT=%v is under 1s", c.IdleTimeout)
	}
	if c.MaxLifetime < time.Second {
		bad("SESSION_MAX_LIFETIME=%v is under 1s", c.MaxLifetime)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"LOGIN_HASH_SLOTS", c.Login.HashSlots},
		{"LOGIN_ACCOUNT_FAILURES", c.Login.AccountFailures},
		{"LOGIN_ADDRESS_FAILURES", c.Login.AddressFailures},
	} {
		if n.v < 1 {
			bad("%s=%d must be at least 1", n.name, n.v)
		}
	}
	if l := c.Login; l.HardLimit < 1 || l.HardLimit > users.MaxHardLimit {
		bad("LOGIN_HARD_LIMIT=%d is out of range 1-%d", l.HardLimit, users.MaxHardLimit)
	}
	if l := c.Login; l.IPv4Prefix < 8 || l.IPv4Prefix > 32 {
		bad("LOGIN_IPV4_PREFIX=%d is out of range 8-32", l.IPv4Prefix)
	}
	if l := c.Login; l.IPv6Prefix < 32 || l.IPv6Prefix > 128 {
		bad("LOGIN_IPV6_PREFIX=%d is out of range 32-128", l.IPv6Prefix)
	}
	for _, p := range c.trustedProxies() {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				bad("TRUSTED_PROXIES: %q is neither an IP address nor a CIDR range such as 10.0.0.0/8", p)
			}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SHUTDOWN_DRAIN", c.ShutdownDrain}, {"HSTS_MAX_AGE", c.HSTSMaxAge}, {"LOG_FLUSH_INTERVAL", c.LogFlushInterval}} {
		if d.v < 0 {
			bad("%s=%v is negative; 0 turns it off", d.name, d.v)
		}
	}
	if len(c.trustedProxies()) > 0 && strings.TrimSpace(c.ProxyHeader) == "" {
		bad("PROXY_HEADER is empty but TRUSTED_PROXIES is set")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DB_QUERY_TIMEOUT", c.Store.QueryTimeout},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			bad("%s=%v must be positive", d.name, d.v)
		}
	}
	return errs
}

// trustedProxies is TrustedProxies as a list, blanks dropped.
func (c Config) trustedProxies() []string {
	var list []string
	for _, p := range strings.Split(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			list = append(list, p)
		}
	}
	return list
}

// strictTransportSecurity is the Strict-Transport-Security header's value: max-age in whole
// seconds of HSTSMaxAge while the session cookie is Secure (the site is served over HTTPS), ""
// (no header) otherwise or when HSTSMaxAge is under a second.
func (c Config) strictTransportSecurity() string {
	if !c.CookieSecure || c.HSTSMaxAge < time.Second {
		return ""
	}
	return "max-age=" + strconv.FormatInt(int64(c.HSTSMaxAge/time.Second), 10)
}

// storeConfig is the session store's configuration for this Config and clock.
func (c Config) storeConfig(now func() time.Time) storage.Config {
	st := c.Store
	st.Now = now
	st.Decode = decodeSession // what the guard reads (sessions.Guard)
	st.Owner = sessionOwner   // what logging out everywhere and the user's list find
	return st
}

// envParser reads typed variables, collecting a message for each one that does not parse.
type envParser struct {
	lookup func(string) (string, bool)
	errs   []string
}

// parseVar sets *dst to the variable's value as parse reads it, and leaves *dst alone when the
// variable is unset or empty. A value parse refuses adds a message naming the variable.
func parseVar[T any](p *envParser, name string, parse func(string) (T, error), dst *T) {
	v, _ := p.lookup(name)
	if v == "" {
		return
	}
	x, err := parse(v)
	if err != nil {
		p.errs = append(p.errs, fmt.Sprintf("%s=%q %v", name, v, err))
		return
	}
	*dst = x
}

// The parsers of parseVar. Their errors complete the sentence `NAME="value" ...`.

func parseString(v string) (string, error) { return v, nil }

func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errors.New("is not a whole number")
	}
	return n, nil
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("is not true or false")
	}
	return b, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("is not a duration such as 90s, 15m or 168h")
	}
	return d, nil
}

func parseLevel(v string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return 0, errors.New("is not debug, info, warn or error")
	}
	return l, nil
}

func parseLogFormat(v string) (string, error) {
	if v != "text" && v != "json" {
		return "", errors.New("is not text or json")
	}
	return v, nil
}

// withDotEnv returns a lookupEnv that falls back to the .env file at path for variables
// lookupEnv does not set. A missing file is not an error; a malformed one is.
func withDotEnv(lookupEnv func(string) (string, bool), path string) (func(string) (string, bool), error) {
	file, err := godotenv.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return lookupEnv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, oneLine(err))
	}
	return func(name string) (string, bool) {
		if v, ok := lookupEnv(name); ok {
			return v, true
		}
		v, ok := file[name]
		return v, ok
	}, nil
}

// oneLine flattens an error message so that start-up failures stay on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
