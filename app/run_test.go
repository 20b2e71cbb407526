package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"
)

// run calls Run the way main does, with vars as the whole environment, on free ports unless
// vars says otherwise (withFreePorts): no test may depend on a default port, which a
// developer's own server may hold.
func run(t *testing.T, vars map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	return runHooked(t, vars, Hooks{}, stdin, args...)
}

// runHooked is run with hooks h.
func runHooked(t *testing.T, vars map[string]string, h Hooks, stdin string, args ...string) (string, error) {
	t.Helper()
	vars = withFreePorts(vars)
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), args, env(vars), strings.NewReader(stdin), &stdout, &stderr, h)
	return stdout.String(), err
}

// withFreePorts returns a copy of vars in which what vars leaves unset suits a test: PORT 0
// (and no other listener), no shutdown drain and no memory limit (it would be the whole test
// process's).
func withFreePorts(vars map[string]string) map[string]string {
	vars = maps.Clone(vars)
	if vars == nil {
		vars = map[string]string{}
	}
	for name, v := range map[string]string{
		"PORT":           "0",
		"METRICS_ADDR":   "", // optional: metrics
		"SHUTDOWN_DRAIN": "0",
		"GOMEMLIMIT":     "off",
	} {
		if _, ok := vars[name]; !ok {
			vars[name] = v
		}
	}
	return vars
}

// serveForTest runs the serve command with vars as the whole environment (withFreePorts) and
// waits until it listens. It returns the address, the cancel that stands for SIGTERM, and Run's
// result.
func serveForTest(t *testing.T, vars map[string]string) (addr string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	vars = withFreePorts(vars)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	result := make(chan error, 1)
	go func() {
		result <- Run(ctx, []string{"serve"}, env(vars), strings.NewReader(""), io.Discard, io.Discard,
			Hooks{Ready: func(addr string, _ *storage.Store) { ready <- addr }})
	}()
	select {
	case addr = <-ready:
	case err := <-result:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server not listening after 30s")
	}
	return addr, cancel, result
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		want     string   // the command's words; "" for an error
		wantArgs []string // its arguments
	}{
		{nil, "serve", nil},
		{[]string{"serve"}, "serve", nil},
		{[]string{"help"}, "help", nil},
		{[]string{"--help"}, "help", nil},
		{[]string{"-h"}, "help", nil},
		{[]string{"migrate", "up"}, "migrate up", nil},
		{[]string{"migrate", "down"}, "migrate down", nil},
		{[]string{"migrate", "version"}, "migrate version", nil},
		{[]string{"user", "create", "a@b.c"}, "user create", []string{"a@b.c"}},
		{[]string{"user", "passwd", "a@b.c"}, "user passwd", []string{"a@b.c"}},
		{[]string{"health"}, "health", nil},
		{[]string{"health", "now"}, "", nil},
		{[]string{"serve", "now"}, "", nil},
		{[]string{"migrate"}, "", nil},
		{[]string{"migrate", "sideways"}, "", nil},
		{[]string{"user", "create"}, "", nil},
		{[]string{"user", "rename", "a@b.c"}, "", nil}, // not "delete": the README adds that one
		{[]string{"user", "create", "a@b.c", "extra"}, "", nil},
		{[]string{"frobnicate"}, "", nil},
	}
	for _, tt := range tests {
		cmd, args, err := parseArgs(tt.args)
		if tt.want == "" {
			if err == nil || !strings.Contains(err.Error(), Name+" help") {
				t.Errorf("parseArgs(%q): got %v, want an error pointing to %s help", tt.args, err, Name)
			}
			continue
		}
		if err != nil || cmd.words != tt.want || !slices.Equal(args, tt.wantArgs) {
			t.Errorf("parseArgs(%q): got %v %q, %v; want %s %q", tt.args, cmd, args, err, tt.want, tt.wantArgs)
		}
	}
}

// TestCommandsTable checks every entry of the commands table: its usage line is in the help
// text, parses back to it, and it is refused with an argument too many or too few.
func TestCommandsTable(t *testing.T) {
	t.Parallel()
	help := usage()
	seen := map[string]bool{}
	for _, c := range commands {
		if seen[c.words] {
			t.Errorf("command %q is in the table twice", c.words)
		}
		seen[c.words] = true
		if !strings.Contains(help, c.usageLine()+" ") || !strings.Contains(help, c.help) {
			t.Errorf("help text lacks %q: %s", c.usageLine(), help)
		}
		args := strings.Fields(c.usageLine())
		got, _, err := parseArgs(args)
		if err != nil || got.words != c.words {
			t.Errorf("parseArgs(%q): got %v, %v; want command %q", args, got, err, c.words)
		}
		if _, _, err := parseArgs(append(args, "extra")); err == nil {
			t.Errorf("parseArgs(%q + extra): got no error", args)
		}
		if len(c.args) > 0 {
			if _, _, err := parseArgs(args[:len(args)-1]); err == nil {
				t.Errorf("parseArgs(%q without its last argument): got no error", args)
			}
		}
		if (c.run == nil) != (c.words == "help") {
			t.Errorf("command %q: only help may have no run", c.words)
		}
	}
}

func TestReadPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"secret\n", "secret", false},
		{"secret\r\n", "secret", false},
		{"secret", "secret", false}, // no final newline
		{"  spaced out  \nsecond line\n", "  spaced out  ", false},
		{"", "", true},
	}
	for _, tt := range tests {
		got, err := readPassword(strings.NewReader(tt.in))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("readPassword(%q): got %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	out, err := run(t, nil, "", "help")
	if err != nil || !strings.Contains(out, "user passwd EMAIL") {
		t.Errorf("help: got %q, %v; want the usage", out, err)
	}
}

// Start-up failures are one line that names the cause; main prints it and exits 1.
func TestRunStartupFailuresAreOneLine(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	noSuchRole, err := url.Parse(pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	noSuchRole.User = url.User("no_such_role")
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want []string
	}{
		{"bad setting", map[string]string{"SESSION_IDLE_TIMEOUT": "a week"}, nil, []string{"SESSION_IDLE_TIMEOUT"}},
		{"unknown command", nil, []string{"start"}, []string{`"start"`, "help"}},
		{"no database", map[string]string{
			"DATABASE_URL": "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable",
		}, nil, []string{"127.0.0.1:1", "DATABASE_URL", "db:up"}},
		{"no database for migrate", map[string]string{
			"DATABASE_URL": "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable",
		}, []string{"migrate", "up"}, []string{"127.0.0.1:1", "DATABASE_URL"}},
		{"no such user", map[string]string{"DATABASE_URL": noSuchRole.String()}, nil,
			[]string{"no_such_role", "does not exist", "DATABASE_URL"}},
		{"port taken", map[string]string{"DATABASE_URL": pgtest.NewURL(t), "HOST": "127.0.0.1", "PORT": takenPort}, nil,
			[]string{"127.0.0.1:" + takenPort, "PORT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A database that is not there is given up on quickly.
			h := Hooks{Config: func(c *Config) { c.ConnectTimeout = 300 * time.Millisecond }}
			_, err := runHooked(t, tt.vars, h, "", tt.args...)
			wantOneLineNaming(t, err, tt.want...)
		})
	}
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": pgtest.NewURL(t)}

	out, err := run(t, vars, "first copper kettle tune\n", "user", "create", " Ada@Example.com ")
	if err != nil || !strings.Contains(out, "created user 1 ada@example.com") {
		t.Fatalf("user create: got %q, %v; want created user 1 ada@example.com", out, err)
	}

	failures := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"duplicate email", "another velvet harbour moth\n", []string{"user", "create", "ADA@example.com"}, "already exists"},
		{"bad email", "another velvet harbour moth\n", []string{"user", "create", "not an email"}, "not an email address"},
		{"display name", "another velvet harbour moth\n", []string{"user", "create", "Ada <ada2@example.com>"}, "not an email address"},
		{"short password", "short\n", []string{"user", "create", "bob@example.com"}, "password too short"},
		{"no password", "", []string{"user", "create", "bob@example.com"}, "no password on standard input"},
		{"unknown user", "a fine brass lantern glow\n", []string{"user", "passwd", "nobody@example.com"}, "no user with email nobody@example.com"},
		{"short new password", "short\n", []string{"user", "passwd", "ada@example.com"}, "password too short"},
		{"common password", "passwordpassword\n", []string{"user", "create", "bob@example.com"}, "too easy to guess"},
		{"common new password", "1234567890123456\n", []string{"user", "passwd", "ada@example.com"}, "too easy to guess"},
		{"short for the policy", "a fine brass lantern\n", []string{"user", "create", "bob@example.com"}, "want at least 30 characters"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			vars := maps.Clone(vars)
			var h Hooks
			if tt.name == "short for the policy" {
				h.Config = func(c *Config) { c.Login.PasswordMinLength = 30 }
			}
			_, err := runHooked(t, vars, h, tt.stdin, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}

	out, err = run(t, vars, "second copper kettle tune\n", "user", "passwd", "ada@EXAMPLE.com")
	if err != nil || !strings.Contains(out, "ended 0 sessions") {
		t.Fatalf("user passwd: got %q, %v", out, err)
	}
	cfg := DefaultConfig()
	cfg.Login.HashWait = time.Minute // never busy on a loaded machine
	g := users.NewGate(pgtest.Pool(t, vars["DATABASE_URL"]), cfg.Login, make([]byte, 32), cfg.Store.QueryTimeout, time.Now, slog.New(slog.DiscardHandler), nil)
	for pw, want := range map[string]error{"first copper kettle tune": users.ErrBadCredentials, "second copper kettle tune": nil} {
		u, err := g.Check(context.Background(), users.Attempt{Email: "ADA@example.com", Password: pw, Address: "192.0.2.1"})
		if !errors.Is(err, want) || (err == nil && u.Email != "ada@example.com") {
			t.Errorf("Check with %q after passwd: got %+v, %v; want %v", pw, u, err, want)
		}
	}
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": pgtest.NewURL(t)} // migrated to the latest
	latest, err := run(t, vars, "", "migrate", "version")
	if err != nil || !strings.HasPrefix(latest, "schema version ") {
		t.Fatalf("migrate version: got %q, %v", latest, err)
	}
	down, err := run(t, vars, "", "migrate", "down")
	if err != nil || down == latest {
		t.Fatalf("migrate down: got %q, %v; want a version below %q", down, err, latest)
	}
	up, err := run(t, vars, "", "migrate", "up")
	if err != nil || up != latest {
		t.Fatalf("migrate up: got %q, %v; want %q", up, err, latest)
	}
}

// TestRunCreatesMissingDatabase: a database named in DATABASE_URL that does not exist yet is
// created, with one log line, and migrated; a second run finds it and creates nothing.
func TestRunCreatesMissingDatabase(t *testing.T) {
	t.Parallel()
	name := "sessions_create_" + strings.ToLower(rand.Text()[:10])
	u, err := url.Parse(pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	vars := map[string]string{"DATABASE_URL": u.String()}
	admin := pgtest.Pool(t, pgtest.AdminURL())
	t.Cleanup(func() {
		pgtest.Exec(t, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})

	runLogged := func() (stdout, stderr string) {
		t.Helper()
		var out, log bytes.Buffer
		if err := Run(context.Background(), []string{"migrate", "up"}, env(vars), strings.NewReader(""), &out, &log, Hooks{}); err != nil {
			t.Fatalf("migrate up on a missing database: %v\n%s", err, log.String())
		}
		return out.String(), log.String()
	}
	out, log := runLogged()
	if n := strings.Count(log, "created database"); n != 1 || !strings.Contains(log, name) {
		t.Errorf("first run logged %q; want one line saying it created database %s", log, name)
	}
	if !strings.HasPrefix(out, "schema version ") {
		t.Errorf("first run printed %q; want the schema version", out)
	}
	if n := pgtest.Count(t, admin, "SELECT count(*) FROM pg_database WHERE datname = $1", name); n != 1 {
		t.Fatalf("got %d databases named %s, want 1", n, name)
	}
	if _, log := runLogged(); strings.Contains(log, "created database") {
		t.Errorf("second run logged %q; want no creation", log)
	}
}
