package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/term"

	"github.com/gofiber-template/sessions/migrations"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"
)

// Name is the program's name, as its usage text and error messages show it. tools/init renames
// it, with the module, when the template becomes someone's own project.
const Name = "sessions"

// command is one of the program's commands. The table below is the only list of them: the
// usage text, the parser and the tests all read it, so a new command is one entry and its
// function.
type command struct {
	words string                                                    // what selects it: "user create"
	args  []string                                                  // the names of the arguments it takes, in order: "EMAIL"
	help  string                                                    // one line for the usage text
	run   func(ctx context.Context, e *cmdEnv, args []string) error // nil only for help
}

// commands lists every command, in the order the usage text shows them. The first is the
// default, run when there are no arguments.
var commands = []command{
	{"serve", nil, "run the HTTP server (the default); applies pending migrations first unless MIGRATE_ON_START=false", runServe},
	{"migrate up", nil, "apply every pending migration", runMigrate((*migrations.Migrator).Up)},
	{"migrate down", nil, "revert the latest migration", runMigrate((*migrations.Migrator).Down)},
	{"migrate version", nil, "print the schema version", runMigrate(nil)},
	{"user create", []string{"EMAIL"}, "create a user; asks for the password twice on a terminal, else reads one line from standard input", runUserCreate},
	{"user passwd", []string{"EMAIL"}, "change a user's password the same way, and end all their sessions", runUserPasswd},
	{"health", nil, "exit 0 if the server on this machine's PORT answers GET /readyz with 200, else 1", runHealth},
	{"help", nil, "print this text", nil},
}

// cmdEnv is what a command runs with.
type cmdEnv struct {
	cfg    Config
	log    *slog.Logger
	hooks  Hooks
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer // where the password prompts go
}

// db connects to the database (see connect) and, when MIGRATE_ON_START is true and migrate
// is, applies pending migrations. The caller closes the pool.
func (e *cmdEnv) db(ctx context.Context, migrate bool) (*pgxpool.Pool, error) {
	db, err := connect(ctx, e.cfg, e.hooks, e.log)
	if err != nil {
		return nil, err
	}
	if migrate && e.cfg.MigrateOnStart {
		if err := migrations.Up(db); err != nil {
			db.Close()
			return nil, fmt.Errorf("%w (set MIGRATE_ON_START=false to skip)", err)
		}
	}
	return db, nil
}

// usageLine is a command as the usage text shows it: "user create EMAIL".
func (c command) usageLine() string { return strings.Join(append([]string{c.words}, c.args...), " ") }

// usage is the text of the help command.
func usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s [command]\n\n", Name)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-22s %s\n", c.usageLine(), c.help)
	}
	b.WriteString("\nConfiguration comes from the environment and from .env when present; see .env.example.\n")
	return b.String()
}

// parseArgs finds the command args select, and its arguments, before anything else happens.
func parseArgs(args []string) (*command, []string, error) {
	if len(args) == 0 {
		return &commands[0], nil, nil
	}
	if slices.Contains([]string{"-h", "-help", "--help"}, args[0]) {
		args = []string{"help"}
	}
	var near []string // usage lines of the commands that start with args[0]
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.words)
		if words[0] != args[0] {
			continue
		}
		near = append(near, c.usageLine())
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) && len(args)-len(words) == len(c.args) {
			return c, args[len(words):], nil
		}
	}
	why := fmt.Sprintf("unknown command %q", args[0])
	if len(near) > 0 {
		why = "want " + strings.Join(near, " or ")
	}
	return nil, nil, fmt.Errorf("%s; run '%s help' for the commands", why, Name)
}

func runServe(ctx context.Context, e *cmdEnv, _ []string) error {
	return serve(ctx, e.cfg, e.hooks, e.log)
}

// runMigrate returns the run of a migrate command: step (nil for none), then print the schema
// version.
func runMigrate(step func(*migrations.Migrator) error) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, e *cmdEnv, _ []string) error {
		db, err := e.db(ctx, false)
		if err != nil {
			return err
		}
		defer db.Close()
		m, err := migrations.New(db)
		if err != nil {
			return err
		}
		defer m.Close()
		if step != nil {
			if err := step(m); err != nil {
				return err
			}
		}
		return printVersion(m, e.stdout)
	}
}

func printVersion(m *migrations.Migrator, stdout io.Writer) error {
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

// passwordAndDB reads the password of a user command for email (first, so that a missing one
// fails before connecting), then connects and migrates. The caller closes the pool.
func (e *cmdEnv) passwordAndDB(ctx context.Context, email string) (string, *pgxpool.Pool, error) {
	var password string
	var err error
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		password, err = promptPassword(f, e.stderr, email)
	} else {
		password, err = readPassword(e.stdin)
	}
	if err != nil {
		return "", nil, err
	}
	db, err := e.db(ctx, true)
	if err != nil {
		return "", nil, err
	}
	return password, db, nil
}

func runUserCreate(ctx context.Context, e *cmdEnv, args []string) error {
	password, db, err := e.passwordAndDB(ctx, args[0])
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := users.Store{DB: db, Timeout: e.cfg.Store.QueryTimeout}.Create(ctx, args[0], password, e.cfg.Login.PasswordMinLength)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "created user %d %s\n", u.ID, u.Email)
	return err
}

// runUserPasswd changes a password and ends the user's sessions on every instance. A password
// change is a security event: it writes a log line.
func runUserPasswd(ctx context.Context, e *cmdEnv, args []string) error {
	password, db, err := e.passwordAndDB(ctx, args[0])
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := users.Store{DB: db, Timeout: e.cfg.Store.QueryTimeout}.SetPassword(ctx, args[0], password, e.cfg.Login.PasswordMinLength)
	if err != nil {
		return err
	}
	e.log.Info("password change", "outcome", "success", "user", u.ID, "client", "cli")
	// Running servers hear of the deletion through the store's notifications.
	n, err := storage.DeleteOwner(ctx, db, owner(u.ID))
	if err != nil {
		return fmt.Errorf("password changed, but ending the sessions of user %d failed: %w", u.ID, err)
	}
	_, err = fmt.Fprintf(e.stdout, "changed the password of user %d %s; ended %d sessions\n", u.ID, u.Email, n)
	return err
}

// readPassword reads one line from r, without its line ending: the password of a script, piped
// in.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("no password on standard input; run the command on a terminal to be asked for one, or pipe one line, e.g. %s user create EMAIL < password-file", Name)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// promptPassword asks for the password of email on the terminal tty, as passwd does: a prompt
// on prompts, no echo, the password twice. It returns an error if the two differ or are empty.
func promptPassword(tty *os.File, prompts io.Writer, email string) (string, error) {
	ask := func(prompt string) (string, error) {
		fmt.Fprint(prompts, prompt)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(prompts) // the Enter the terminal did not echo
		if err != nil {
			return "", fmt.Errorf("read the password from the terminal: %w", err)
		}
		return string(b), nil
	}
	password, err := ask(fmt.Sprintf("New password for %s: ", email))
	if err != nil {
		return "", err
	}
	if password == "" {
		return "", errors.New("no password typed; nothing changed")
	}
	again, err := ask("Type it again: ")
	if err != nil {
		return "", err
	}
	if again != password {
		return "", errors.New("the two passwords differ; nothing changed")
	}
	return password, nil
}
