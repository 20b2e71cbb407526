// Package app is the program: it reads the configuration, connects to PostgreSQL, wires the
// session store, the handlers and the guard into a Fiber server, and runs that server or one of
// the maintenance commands. Only app and main import everything else.
package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/migrations"
	"github.com/gofiber-template/sessions/storage"
)

const usage = `usage: sessions [command]

  serve                  run the HTTP server (the default); applies pending migrations first
                         unless MIGRATE_ON_START=false
  migrate up             apply every pending migration
  migrate down           revert the latest migration
  migrate version        print the schema version
  user create EMAIL      create a user; reads the password, one line, from standard input
  user passwd EMAIL      change a user's password the same way, and end all their sessions
  help                   print this text

Configuration comes from the environment and from .env when present; see .env.example.
`

// Hooks let tests watch and steer what Run starts. main passes none; every field is optional.
type Hooks struct {
	// Ready is called once the server accepts connections, with the address it listens on and
	// its session store.
	Ready func(addr string, store *storage.Store)
	// MetricsReady is called once the metrics listener (METRICS_ADDR) accepts connections,
	// with the address it listens on.
	MetricsReady func(addr string)
	// Now replaces time.Now as the clock of session expiry and of the touch interval.
	Now func() time.Time
	// PoolConfig may change the database pool's configuration before the pool opens; tests
	// install a pgx tracer here to count the statements the server sends.
	PoolConfig func(*pgxpool.Config)
	// InMemoryStore, for benchmarks only, keeps sessions in storage.NewInMemory instead of
	// Postgres: the same store and read path with nothing persisted or shared, and sessions not
	// bound to their user (logging out everywhere misses them). bench/ uses it to measure the
	// upper bound the tiered store is held against.
	InMemoryStore bool
}

// Run runs the command in args (the program's arguments, without its name) and returns when it
// is done: for serve, when ctx is cancelled and the server has shut down gracefully. It reads
// its configuration through lookupEnv (os.LookupEnv in main), falling back to a .env file in the working directory, and
// the password of the user commands from stdin. Every error it returns fits on one line and says
// what to fix. hooks is for tests: at most one.
func Run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer, hooks ...Hooks) error {
	var h Hooks
	if len(hooks) > 0 {
		h = hooks[0]
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	cmd, err := parseArgs(args)
	if err != nil {
		return err
	}
	if cmd.name == "help" {
		_, err := io.WriteString(stdout, usage)
		return err
	}
	lookupEnv, err = withDotEnv(lookupEnv, ".env")
	if err != nil {
		return err
	}
	cfg, err := LoadConfig(lookupEnv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)

	if cmd.name == "serve" {
		return serve(ctx, cfg, h, log)
	}

	var password string
	if cmd.name == "user create" || cmd.name == "user passwd" {
		// Read before connecting, so that a missing password fails fast.
		if password, err = readPassword(stdin); err != nil {
			return err
		}
	}
	db, err := connect(ctx, cfg, h, log)
	if err != nil {
		return err
	}
	defer db.Close()
	switch cmd.name {
	case "migrate up", "migrate down", "migrate version":
		return migrate(db, cmd.name, stdout)
	default: // user create, user passwd
		if cfg.MigrateOnStart {
			if err := migrations.Up(db); err != nil {
				return fmt.Errorf("%w (set MIGRATE_ON_START=false to skip)", err)
			}
		}
		return user(ctx, db, cmd.name, cmd.email, password, cfg.PasswordMinLength, stdout, log)
	}
}

type command struct {
	name  string // "serve", "help", "migrate up", "user create", ...
	email string // of the user commands
}

// parseArgs checks the command line before anything else happens.
func parseArgs(args []string) (command, error) {
	bad := func(why string) (command, error) {
		return command{}, fmt.Errorf("%s; run 'sessions help' for the commands", why)
	}
	if len(args) == 0 {
		return command{name: "serve"}, nil
	}
	switch args[0] {
	case "serve":
		if len(args) != 1 {
			return bad("serve takes no arguments")
		}
		return command{name: "serve"}, nil
	case "help", "-h", "-help", "--help":
		return command{name: "help"}, nil
	case "migrate":
		if len(args) != 2 || (args[1] != "up" && args[1] != "down" && args[1] != "version") {
			return bad("want migrate up, migrate down or migrate version")
		}
		return command{name: "migrate " + args[1]}, nil
	case "user":
		if len(args) != 3 || (args[1] != "create" && args[1] != "passwd") {
			return bad("want user create EMAIL or user passwd EMAIL")
		}
		return command{name: "user " + args[1], email: args[2]}, nil
	}
	return bad(fmt.Sprintf("unknown command %q", args[0]))
}

// readPassword reads one line from r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on standard input; pipe one line, e.g. echo 'my password' | sessions user create EMAIL")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func migrate(db *pgxpool.Pool, name string, stdout io.Writer) error {
	m, err := migrations.New(db)
	if err != nil {
		return err
	}
	defer m.Close()
	switch name {
	case "migrate up":
		err = m.Up()
	case "migrate down":
		err = m.Down()
	}
	if err != nil {
		return err
	}
	version, dirty, err := m.Version()
	if err != nil {
		return err
	}
	if dirty {
		_, err = fmt.Fprintf(stdout, "schema version %d (dirty: a migration failed half-way; fix it by hand, then force the version)\n", version)
		return err
	}
	_, err = fmt.Fprintf(stdout, "schema version %d\n", version)
	return err
}

// user runs the user commands. A password change is a security event: it writes a log line.
func user(ctx context.Context, db *pgxpool.Pool, name, email, password string, minLen int, stdout io.Writer, log *slog.Logger) error {
	if name == "user create" {
		u, err := createUser(ctx, db, email, password, minLen)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "created user %d %s\n", u.ID, u.Email)
		return err
	}
	u, err := setPassword(ctx, db, email, password, minLen)
	if err != nil {
		return err
	}
	log.Info("password change", "outcome", "success", "user", u.ID, "client", "cli")
	// Running servers hear of the deletion through the store's notifications.
	n, err := storage.DeleteOwner(ctx, db, owner(u.ID))
	if err != nil {
		return fmt.Errorf("password changed, but ending the sessions of user %d failed: %w", u.ID, err)
	}
	_, err = fmt.Fprintf(stdout, "changed the password of user %d %s; ended %d sessions\n", u.ID, u.Email, n)
	return err
}
