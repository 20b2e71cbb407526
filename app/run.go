// Package app is the program: it reads the configuration, connects to PostgreSQL, wires the
// session store, the handlers and the guard into a Fiber server, and runs that server or one of
// the maintenance commands. Only app and main import everything else.
package app

import (
	"context"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/storage"
)

// Hooks let tests watch and steer what Run starts. main passes the zero Hooks; every field is
// optional.
type Hooks struct {
	// Ready is called once the server accepts connections, with the address it listens on and
	// its session store.
	Ready func(addr string, store *storage.Store)
	// optional: metrics begin
	// MetricsReady is called once the metrics listener (METRICS_ADDR) accepts connections,
	// with the address it listens on.
	MetricsReady func(addr string)
	// optional: metrics end
	// Now replaces time.Now as the clock of session expiry and of the touch interval.
	Now func() time.Time
	// DrainAfter replaces time.After as the timer of the shutdown drain (SHUTDOWN_DRAIN):
	// called once when the drain starts, it returns the channel whose receive ends it.
	DrainAfter func(time.Duration) <-chan time.Time
	// Config may change the configuration LoadConfig made, before anything uses it: tests set
	// the fixed values (the touch interval, the sweep, the login gate's waits, the connections'
	// timeouts) this way.
	Config func(*Config)
	// PoolConfig may change the database pool's configuration before the pool opens; tests
	// install a pgx tracer here to count the statements the server sends.
	PoolConfig func(*pgxpool.Config)
}

// Run runs the command in args (the program's arguments, without its name) and returns when it
// is done: for serve, when ctx is cancelled and the server has shut down gracefully. It reads
// its configuration through lookupEnv (os.LookupEnv in main), falling back to a .env file in
// the working directory, and the password of the user commands from stdin (asked for, with
// prompts on stderr, when stdin is a terminal). Every error it
// returns fits on one line and says what to fix. h is for tests; main passes Hooks{}.
func Run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer, h Hooks) error {
	if h.Now == nil {
		h.Now = time.Now
	}
	cmd, cmdArgs, err := parseArgs(args)
	if err != nil {
		return err
	}
	if cmd.run == nil { // help
		_, err := io.WriteString(stdout, usage())
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
	if h.Config != nil {
		h.Config(&cfg)
	}
	return cmd.run(ctx, &cmdEnv{cfg: cfg, log: newLogger(cfg, stderr), hooks: h, stdin: stdin, stdout: stdout, stderr: stderr}, cmdArgs)
}
