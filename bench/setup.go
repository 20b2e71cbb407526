package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sys/unix"

	"github.com/gofiber-template/sessions/storage"
)

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// bench holds what every run shares: the binaries, the database and the slow-database proxy.
type bench struct {
	o      options
	tmp    string
	bin    string // the template's server, built from the repository root
	self   string // this program, which also runs servers under test (serve-app, serve-bare)
	admin  *pgxpool.Pool
	dbName string
	dbURL  string
	proxy  *delayProxy
	cookie string // a login session in the database
	idKey  []byte // the key that signs session ids (table session_key)
	// The comparison's sessions: one per wrk connection, cloned from cookie, sent round-robin
	// by the Lua script, so concurrent requests are for different sessions (as from different
	// users) and the store's shared misses do not hide Postgres in Postgres-only mode.
	cookieFile, seqFile, script string
	log                         *os.File
}

func setup(ctx context.Context, o options) (*bench, error) {
	b := &bench{o: o}
	var err error
	if b.tmp, err = os.MkdirTemp("", "sessions-bench-"); err != nil {
		return nil, err
	}
	if b.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if b.log, err = os.Create(filepath.Join(b.tmp, "servers.log")); err != nil {
		return nil, err
	}
	b.bin = filepath.Join(b.tmp, "sessions")
	step("build the server (go build) from %s", o.repo)
	build := exec.CommandContext(ctx, "go", "build", "-o", b.bin, ".")
	build.Dir, build.Stdout, build.Stderr = o.repo, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}

	if b.admin, err = pgxpool.New(ctx, o.adminURL); err != nil {
		return nil, err
	}
	b.dbName = fmt.Sprintf("bench_%d_%d", time.Now().Unix(), os.Getpid())
	step("create database %s", b.dbName)
	if _, err := b.admin.Exec(ctx, "CREATE DATABASE "+b.dbName); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	b.dbURL = withDB(o.adminURL, b.dbName)
	host := hostPort(o.adminURL)
	if b.proxy, err = startProxy(host, o.delay); err != nil {
		return nil, err
	}

	if err := b.cli(ctx, "", "migrate", "up"); err != nil {
		b.close()
		return nil, err
	}
	if err := b.cli(ctx, benchPassword+"\n", "user", "create", benchEmail); err != nil {
		b.close()
		return nil, err
	}
	srv, err := b.start(ctx, "tiered", false, -1)
	if err != nil {
		b.close()
		return nil, err
	}
	b.cookie, err = login(srv.addr)
	srv.stop()
	if err != nil {
		b.close()
		return nil, err
	}
	if b.idKey, err = readIDKey(ctx, b.dbURL); err != nil {
		b.close()
		return nil, err
	}
	if err := b.comparisonSessions(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *bench) close() {
	if b.proxy != nil {
		b.proxy.Close()
	}
	if b.admin != nil && b.dbName != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := b.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+b.dbName+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "bench: drop database %s: %v\n", b.dbName, err)
		}
		b.admin.Close()
	}
	if b.log != nil {
		b.log.Close()
	}
	_ = os.RemoveAll(b.tmp)
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// withDB and hostPort take apart a postgres:// URL.
func withDB(url, db string) string {
	i := strings.Index(url, "://")
	rest := url[i+3:]
	j := strings.Index(rest, "/")
	q := ""
	if k := strings.Index(rest, "?"); k >= 0 {
		q = rest[k:]
	}
	return url[:i+3] + rest[:j] + "/" + db + q
}

func hostPort(url string) string {
	rest := url[strings.Index(url, "://")+3:]
	rest = rest[:strings.Index(rest, "/")]
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	if !strings.Contains(rest, ":") {
		rest += ":5432"
	}
	return rest
}

// viaProxy is dbURL with the host replaced by the delaying proxy.
func (b *bench) viaProxy() string {
	return strings.Replace(b.dbURL, hostPort(b.dbURL), b.proxy.Addr(), 1)
}

func (b *bench) cli(ctx context.Context, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Dir = b.tmp
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + b.dbURL}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("sessions %s: %w: %s", strings.Join(args, " "), err, out)
	}
	step("sessions %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	return nil
}

// server is one server under test, a process pinned to the server core.
type server struct {
	cmd       *exec.Cmd
	addr, ctl string
	done      chan struct{}
}

// start starts the server of mode ("tiered", "postgres", "bare"); capacity < 0
// means the default for the mode.
func (b *bench) start(ctx context.Context, mode string, slow bool, capacity int) (*server, error) {
	sub := "serve-app"
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOST=127.0.0.1", "PORT=0", "COOKIE_SECURE=false", "MIGRATE_ON_START=false",
	}
	db := b.dbURL
	if slow {
		db = b.viaProxy()
	}
	env = append(env, "DATABASE_URL="+db)
	switch mode {
	case "bare":
		sub = "serve-bare"
	case "floor":
		sub = "serve-floor"
	case "tiered-error":
		env = append(env, "LOG_LEVEL=error")
	case "postgres":
		capacity = 0
	}
	if capacity >= 0 {
		env = append(env, "SESSION_CACHE_CAPACITY="+strconv.Itoa(capacity))
	}
	args := []string{b.self, sub}
	if p, err := exec.LookPath("taskset"); err == nil && os.Getenv("BENCH_PINNED") != "" {
		args = append([]string{p, "-c", strconv.Itoa(b.o.serverCore)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir, cmd.Env, cmd.Stderr = b.tmp, env, b.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "READY" {
				s.addr, s.ctl = f[1], f[2]
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				break
			}
		}
		ready <- errors.New("server exited before it was ready; see its log")
	}()
	go func() { _ = cmd.Wait(); close(s.done) }()
	select {
	case err = <-ready:
	case <-time.After(20 * time.Second):
		err = errors.New("server not ready after 20s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		s.stop()
		logTail, _ := os.ReadFile(b.log.Name())
		return nil, fmt.Errorf("start %s server: %w\n%s", mode, err, tail(string(logTail), 2000))
	}
	return s, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// rssKB is the server's resident set (VmRSS) in KiB.
// cpuTicks is the CPU time (user and system, in clock ticks: 1/100 s on Linux) the server has
// used so far, 0 when it cannot be read.
func (s *server) cpuTicks() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command's name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

func (s *server) rssKB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// stats reads the store's counters through the bench's control listener.
func (s *server) stats() (storage.Stats, error) {
	var st storage.Stats
	resp, err := http.Get("http://" + s.ctl + "/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// login logs the bench user in and returns the session cookie's value.
func login(addr string) (string, error) {
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, benchEmail, benchPassword)
	resp, err := http.Post("http://"+addr+"/login", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("login: %s: %s", resp.Status, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "session" {
			return c.Value, nil
		}
	}
	return "", errors.New("login: no session cookie")
}

// get sends n sequential GET /me with cookie and fails on any status but 200.
func get(addr, cookie string, n int) error {
	for range n {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/me", nil)
		if cookie != "" {
			req.Header.Set("Cookie", "session="+cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /me: %s", resp.Status)
		}
	}
	return nil
}

// pgSnap is a reading of Postgres's own statistics for the bench database.
type pgSnap struct {
	xacts     int64 // pg_stat_database.xact_commit + xact_rollback
	pkeyScans int64 // pg_stat_user_indexes.idx_scan of sessions_pkey: session reads by key
}

// snap reads the statistics once every backend of the bench database has exited: a backend
// flushes its counters at exit, but while it lives only now and then (up to 10 s late).
func (b *bench) snap(ctx context.Context) (pgSnap, error) {
	var s pgSnap
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		if err := b.admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", b.dbName).Scan(&n); err != nil {
			return s, err
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%d backends of %s still open after 10s", n, b.dbName)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.admin.QueryRow(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", b.dbName).Scan(&s.xacts); err != nil {
		return s, err
	}
	// pg_stat_user_indexes is per database: ask through a short connection to the bench database.
	conn, err := pgxpool.New(ctx, b.dbURL)
	if err != nil {
		return s, err
	}
	defer conn.Close()
	err = conn.QueryRow(ctx, "SELECT coalesce(idx_scan, 0) FROM pg_stat_user_indexes WHERE indexrelname = 'sessions_pkey'").Scan(&s.pkeyScans)
	return s, err
}

// pinBackends pins the bench database's Postgres backends to the load core, off the server's.
func (b *bench) pinBackends(ctx context.Context) {
	if os.Getenv("BENCH_PINNED") == "" {
		return
	}
	rows, err := b.admin.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = $1", b.dbName)
	if err != nil {
		return
	}
	defer rows.Close()
	var set unix.CPUSet
	set.Set(b.o.loadCore)
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			_ = unix.SchedSetaffinity(pid, &set)
		}
	}
}

// newCookie is a fresh session id that the server accepts: random, signed under the key the
// server keeps in the session_key table, in app/sessionid.go's format.
func (b *bench) newCookie() string {
	r := rand.Text()
	m := hmac.New(sha256.New, b.idKey)
	m.Write([]byte(r))
	return r + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(m.Sum(nil)[:16])
}

// readIDKey reads the key that signs session ids from the database at dbURL.
func readIDKey(ctx context.Context, dbURL string) ([]byte, error) {
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var key []byte
	if err := db.QueryRow(ctx, "SELECT key FROM session_key").Scan(&key); err != nil {
		return nil, fmt.Errorf("read the session key: %w", err)
	}
	return key, nil
}
