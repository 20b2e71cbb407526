package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gofiber-template/sessions/internal/testenv"
)

// Cluster is a throwaway PostgreSQL server of one test's own, for tests that stop, restart or
// break the database: the shared server is never touched. It listens on 127.0.0.1 on a free
// port, trusts every local connection, and runs without fsync. NewCluster starts it; it is
// stopped and its files removed when the test ends. Its methods fail the test on error and are
// not safe for concurrent use.
type Cluster struct {
	t    testing.TB
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string // data directory
	log  string // server log
	uid  int    // owner of the files the server reads; -1: this process's user
	gid  int
	Port int
}

// NewCluster creates and starts a cluster with the server settings given as "name=value"
// lines appended to its postgresql.conf. It needs PostgreSQL's server binaries: the newest of
// /usr/lib/postgresql/*/bin, or the directory in PG_BIN. Run as root, it runs them as the user
// postgres, since PostgreSQL refuses to run as root.
//
// A cluster takes seconds to start, so NewCluster marks its test slow (testenv.Slow).
func NewCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	testenv.Slow(t)
	bin := os.Getenv("PG_BIN")
	if bin == "" {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
		if len(dirs) > 0 {
			bin = dirs[len(dirs)-1]
		}
	}
	if _, err := os.Stat(filepath.Join(bin, "pg_ctl")); bin == "" || err != nil {
		t.Fatalf("pgtest: this test starts a PostgreSQL server of its own and needs initdb and pg_ctl:\n" +
			"install them (Debian/Ubuntu: apt-get install postgresql) or set PG_BIN to their directory")
	}
	dir, err := os.MkdirTemp("", "pgtest-cluster-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c := &Cluster{t: t, bin: bin, uid: -1, gid: -1, dir: filepath.Join(dir, "data"), log: filepath.Join(dir, "server.log")}
	t.Cleanup(func() {
		// Immediate: the test is over, nothing in it needs saving.
		_, _ = c.run("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root, and there is no user postgres to run PostgreSQL as: %v", err)
		}
		c.uid, _ = strconv.Atoi(u.Uid)
		c.gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(dir, c.uid, c.gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if out, err := c.run("initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	c.Port = freePort(t)
	conf := []string{
		"port = " + strconv.Itoa(c.Port),
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + c.dir + "'",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
	}
	conf = append(conf, settings...)
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("pgtest: write postgresql.conf: %v", err)
	}
	c.Start()
	return c
}

// versionOf is the major version in a path like /usr/lib/postgresql/15/bin.
func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// run runs one of the server's programs, as postgres when this process is root.
func (c *Cluster) run(prog string, args ...string) (string, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = os.TempDir() // a directory the user postgres may enter
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *Cluster) ctl(args ...string) {
	c.t.Helper()
	args = append([]string{"-D", c.dir, "-l", c.log, "-w", "-t", "60"}, args...)
	if out, err := c.run("pg_ctl", args...); err != nil {
		logText, _ := os.ReadFile(c.log)
		c.t.Fatalf("pgtest: pg_ctl %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, logText)
	}
}

// Start starts the stopped server and returns once it accepts connections.
func (c *Cluster) Start() { c.t.Helper(); c.ctl("start") }

// Stop shuts the server down in fast mode: sessions are terminated (SQLSTATE 57P01), open
// transactions rolled back. It returns once the server is down.
func (c *Cluster) Stop() { c.t.Helper(); c.ctl("-m", "fast", "stop") }

// Restart is Stop then Start.
func (c *Cluster) Restart() { c.t.Helper(); c.ctl("-m", "fast", "restart") }

// StartStandby starts the stopped server as a standby with no primary, as a server that a
// failover left behind: with hot set it accepts read-only connections (a write fails with
// SQLSTATE 25006), without it it refuses every connection (SQLSTATE 57P03). Promote makes it a
// primary again.
func (c *Cluster) StartStandby(hot bool) {
	c.t.Helper()
	signal := filepath.Join(c.dir, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
	if err := os.Chown(signal, c.uid, c.gid); err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
	c.ctl("-o", "-c hot_standby="+strconv.FormatBool(hot), "start")
}

// Promote turns the standby started by StartStandby into a primary and waits until it is one.
func (c *Cluster) Promote() { c.t.Helper(); c.ctl("promote") }

// URL returns the URL of database db on the cluster, as user postgres.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDatabase creates database name and returns its URL.
func (c *Cluster) CreateDatabase(name string) string {
	c.t.Helper()
	c.Exec("CREATE DATABASE " + pgx.Identifier{name}.Sanitize())
	return c.URL(name)
}

// connect opens a connection of its own to the cluster's database postgres.
func (c *Cluster) connect(ctx context.Context) *pgx.Conn {
	c.t.Helper()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		c.t.Fatalf("pgtest: connect to the test cluster: %v", err)
	}
	return conn
}

// Exec runs one statement in the database postgres of the cluster on a connection of its own.
func (c *Cluster) Exec(sql string, args ...any) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := c.connect(ctx)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		c.t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Terminate ends, with pg_terminate_backend, every connection to database db but its own, and
// returns how many it ended. The clients of those connections get SQLSTATE 57P01 on their next
// statement.
func (c *Cluster) Terminate(db string) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := c.connect(ctx)
	defer conn.Close(context.Background())
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()) t`, db).Scan(&n)
	if err != nil {
		c.t.Fatalf("pgtest: terminate the connections to %s: %v", db, err)
	}
	return n
}
