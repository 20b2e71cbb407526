package tests

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/testenv"
)

// pgbouncerQueryParams is what pgx needs in DATABASE_URL behind PgBouncer in transaction mode
// (the README's PgBouncer section): its default statement cache keeps named prepared statements
// on a server connection, which PgBouncer before 1.21 hands to other clients between
// transactions. exec sends every statement in one round trip with an unnamed statement.
const pgbouncerQueryParams = "default_query_exec_mode=exec"

// TestPgBouncerTransactionMode runs two servers whose pools go through PgBouncer in transaction
// mode and whose listeners go direct (LISTEN_DATABASE_URL), as the README tells operators to:
// every request works, no statement fails (a misrouted prepared statement would), and a logout
// on one instance reaches the other as fast as without PgBouncer.
func TestPgBouncerTransactionMode(t *testing.T) {
	t.Parallel()
	dbURL, _ := withUser(t) // migrated directly: the deploy step the README describes
	bouncer := startPgBouncer(t, dbURL)

	var failures stmtErrors
	env := baseEnv(bouncer.URL + "&" + pgbouncerQueryParams)
	env["LISTEN_DATABASE_URL"] = dbURL
	// golang-migrate holds a session-level advisory lock, which transaction pooling cannot keep
	// on one server connection: migrations go direct (see the README).
	env["MIGRATE_ON_START"] = "false"
	clk := newClock()
	touch := func(c *app.Config) { c.TouchInterval = time.Minute }
	a := startServer(t, env, app.Hooks{PoolConfig: failures.Install, Now: clk.Now, Config: touch})
	b := startServer(t, env, app.Hooks{PoolConfig: failures.Install, Now: clk.Now, Config: touch})

	// Several browsers at once, logging in on one instance and reading on the other, so that
	// the servers' client connections take turns on PgBouncer's two server connections.
	const browsers = 8
	clients := make([]*http.Client, browsers)
	var wg sync.WaitGroup
	errs := make(chan error, browsers)
	for i := range clients {
		clients[i] = newClient(t)
		on, other := a, b
		if i%2 == 1 {
			on, other = b, a
		}
		wg.Go(func() {
			errs <- loginAndRead(clients[i], on, other)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.Fatalf("statement errors: %v", failures.All())
	}

	// Every session refreshed, through PgBouncer too: the first instance's Touch moves the
	// expiry, the other's finds it moved.
	clk.Advance(2 * time.Minute)
	for _, c := range clients {
		mustMe(t, c, a, http.StatusOK)
		mustMe(t, c, b, http.StatusOK)
	}
	if got := a.Store.Stats().Touches + b.Store.Stats().Touches; got != 2*browsers {
		t.Errorf("refreshes through PgBouncer: got %d, want %d (one per session on each instance)", got, 2*browsers)
	}

	// The session list and ending one session from it, through PgBouncer too: the browser the
	// last client is ends up logged out on both instances.
	c := clients[0]
	list := mustList(t, c, b)
	if len(list) != browsers {
		t.Fatalf("GET /sessions through PgBouncer: got %d sessions, want %d", len(list), browsers)
	}
	mustMe(t, clients[browsers-1], a, http.StatusOK)
	victim := sessionCookie(t, clients[browsers-1], a)
	var victimID string
	for _, sess := range mustList(t, clients[browsers-1], a) {
		if sess.Current {
			victimID = sess.ID
		}
	}
	if status, body := do(t, c, "DELETE", b.URL+"/sessions/"+victimID, "", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE /sessions/{id} on B: got %d %s, want 204", status, body)
	}
	eventually(t, withCookie(victim), a, http.StatusUnauthorized, notifyWithin)
	clients = clients[:browsers-1]

	// Logout on A, refused on B within notifyWithin: the invalidation came over B's direct
	// listener.
	mustMe(t, c, b, http.StatusOK) // in B's memory
	copyOfCookie := withCookie(sessionCookie(t, c, a))
	if status, body := do(t, c, "POST", a.URL+"/logout", "", ""); status != http.StatusNoContent {
		t.Fatalf("logout on A: got %d %s, want 204", status, body)
	}
	took := eventually(t, copyOfCookie, b, http.StatusUnauthorized, notifyWithin)
	t.Logf("through PgBouncer: B refused the session %v after the logout on A", took)
	mustMe(t, copyOfCookie, a, http.StatusUnauthorized)
	for _, c := range clients[1:] {
		mustMe(t, c, a, http.StatusOK)
		mustMe(t, c, b, http.StatusOK)
	}

	if errs := failures.All(); len(errs) > 0 {
		t.Errorf("statements that failed through PgBouncer: got %d, want none: %v", len(errs), errs)
	}
	// The servers' statements did go through PgBouncer, in transactions it pooled.
	if n := bouncer.Transactions(t); n == 0 {
		t.Errorf("PgBouncer SHOW STATS: got %d transactions pooled, want some", n)
	}
}

// loginAndRead logs c in on one server and reads /me on both, returning the first failure.
func loginAndRead(c *http.Client, on, other *server) error {
	resp, err := c.Post(on.URL+"/login", "application/json", strings.NewReader(loginBody(email, password)))
	if err != nil {
		return fmt.Errorf("login on %s: %w", on.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login on %s: got %d, want 200", on.URL, resp.StatusCode)
	}
	for _, s := range []*server{other, on, other} {
		resp, err := c.Get(s.URL + "/me")
		if err != nil {
			return fmt.Errorf("GET %s/me: %w", s.URL, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s/me: got %d, want 200", s.URL, resp.StatusCode)
		}
	}
	return nil
}

// stmtErrors is a pgx tracer that records every statement that fails. Installed through
// app.Hooks.PoolConfig it watches the server's pool, which the session store shares.
type stmtErrors struct {
	mu   sync.Mutex
	errs []string
}

var (
	_ pgx.QueryTracer = (*stmtErrors)(nil)
	_ pgx.BatchTracer = (*stmtErrors)(nil)
)

func (s *stmtErrors) Install(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = s }

func (s *stmtErrors) record(err error) {
	// The server's own deadlines and shutdown cancel statements; only the database's refusals
	// count.
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	msg := err.Error()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg = fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	s.mu.Lock()
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
}

func (s *stmtErrors) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errs...)
}

func (s *stmtErrors) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (s *stmtErrors) TraceQueryEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	s.record(d.Err)
}

func (s *stmtErrors) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (s *stmtErrors) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	s.record(d.Err)
}

func (s *stmtErrors) TraceBatchEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchEndData) {
	s.record(d.Err)
}

// pgbouncer is a PgBouncer process of the test's own.
type pgbouncer struct {
	URL      string // the test database through PgBouncer, ?sslmode=disable
	adminURL string // PgBouncer's admin console
	db       string
}

// pgbouncerInstall is what the failure message tells a developer to run.
const pgbouncerInstall = "sudo apt-get install pgbouncer (Debian/Ubuntu; .ci/run does this), or brew install pgbouncer (macOS)"

// startPgBouncer starts PgBouncer in transaction mode on a free port in front of the database
// dbURL names, with two server connections for all its clients, and stops it when the test
// ends. Without PgBouncer installed it skips the test (fails it in CI).
func startPgBouncer(t *testing.T, dbURL string) *pgbouncer {
	t.Helper()
	bin := testenv.Tool(t, pgbouncerInstall, "pgbouncer")
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	pgUser := u.User.Username()
	pgPass, _ := u.User.Password()
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}

	// PgBouncer refuses to run as root; as root, drop to nobody, who must read the files.
	dir, err := os.MkdirTemp("", "pgbouncer-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	listenPort := freePort(t)
	server := fmt.Sprintf("host=%s port=%s dbname=%s user=%s", host, port, db, pgUser)
	if pgPass != "" {
		server += " password=" + pgPass
	}
	ini := fmt.Sprintf(`[databases]
%s = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = %s
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
`, db, server, listenPort, filepath.Join(dir, "users.txt"), pgUser)
	files := map[string]string{
		"pgbouncer.ini": ini,
		"users.txt":     fmt.Sprintf("%q \"\"\n", pgUser), // trust: the user only has to be listed
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running as root, PgBouncer needs another user to run as: %v", err)
		}
		args = append([]string{"-u", nobody.Username}, args...)
	}
	var log syncBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // immediate shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("pgbouncer log:\n%s", log.String())
		}
	})

	pb := &pgbouncer{
		URL:      fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.PathEscape(pgUser), listenPort, db),
		adminURL: fmt.Sprintf("postgres://%s@127.0.0.1:%d/pgbouncer?sslmode=disable&default_query_exec_mode=simple_protocol", url.PathEscape(pgUser), listenPort),
		db:       db,
	}
	// Ready when a query through it answers.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, pb.URL+"&default_query_exec_mode=simple_protocol")
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return pb
		}
		select {
		case <-exited:
			t.Fatalf("pgbouncer exited at start-up:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer on port %d not answering after 15s: %v\n%s", listenPort, err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Transactions returns how many transactions PgBouncer has pooled for the test database, from
// its admin console's SHOW STATS.
func (p *pgbouncer) Transactions(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.adminURL)
	if err != nil {
		t.Fatalf("pgbouncer admin console: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SHOW STATS")
	if err != nil {
		t.Fatalf("pgbouncer SHOW STATS: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		// The admin console answers in text (simple protocol): read the columns as such.
		raw := rows.RawValues()
		stat := map[string]string{}
		for i, f := range rows.FieldDescriptions() {
			stat[f.Name] = string(raw[i])
		}
		if stat["database"] == p.db {
			n, err := strconv.ParseInt(stat["total_xact_count"], 10, 64)
			if err != nil {
				t.Fatalf("pgbouncer SHOW STATS total_xact_count %q: %v", stat["total_xact_count"], err)
			}
			return n
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("pgbouncer SHOW STATS: %v", err)
	}
	t.Fatalf("pgbouncer SHOW STATS: no row for database %s", p.db)
	return 0
}

// freePort returns a TCP port on the loopback interface that nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
