package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/storage"
)

// serveChild, set in a child's environment, makes this test binary the server, as main.go
// runs it (TestMain), so that a test can measure the memory of a process that is only the
// server.
const serveChild = "SESSIONS_TEST_SERVE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(serveChild) != "" {
		os.Exit(runServeChild())
	}
	os.Exit(m.Run())
}

// runServeChild is main.go with the listening address written to standard output.
func runServeChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.Run(ctx, []string{"serve"}, os.LookupEnv, os.Stdin, io.Discard, os.Stderr, app.Hooks{
		// As every test server: logins wait for a hashing slot rather than get 503 (the load
		// keeps both busy).
		Config: func(c *app.Config) { c.Login.HashWait = 10 * time.Second },
		// The memory limit in force once the server listens: what serve set.
		Ready: func(addr string, _ *storage.Store) { fmt.Printf("READY %s %d\n", addr, debug.SetMemoryLimit(-1)) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childServer is a server running in a child process of the test.
type childServer struct {
	URL   string
	Limit int64 // the Go runtime's memory limit in the child
	cmd   *exec.Cmd
}

// startChild starts the server in a child process with exactly env as its environment (and
// PATH), waits until it listens, and stops it when the test ends.
func startChild(t *testing.T, env map[string]string) *childServer {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{serveChild + "=1", "PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childServer{cmd: cmd}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- line
			}
		}
	}()
	select {
	case line := <-ready:
		addr, limit, _ := strings.Cut(line, " ")
		c.URL = "http://" + addr
		c.Limit, _ = strconv.ParseInt(limit, 10, 64)
	case <-time.After(60 * time.Second):
		t.Fatalf("child server not listening after 60 s\n%s", stderr.String())
	}
	return c
}

// status returns the child's /proc status fields named, in KiB (VmRSS, VmHWM).
func (c *childServer) status(t *testing.T, names ...string) []int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(names))
	for _, line := range strings.Split(string(b), "\n") {
		for i, name := range names {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				out[i], _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	return out
}

// stop sends SIGTERM and fails the test unless the child exits 0.
func (c *childServer) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("child server: %v, want exit status 0", err)
	}
}

// loginLoad logs in clients × each times with the right password (every attempt costs a hash,
// and none is throttled), each client on its own keep-alive connection, and fails the test on
// any answer but 200.
func loginLoad(t *testing.T, url string, clients, each int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			for range each {
				resp, err := c.Post(url+"/login", "application/json", strings.NewReader(loginBody(email, password)))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("login: got %d, want 200", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestLoginMemory measures the resident memory of a server process, only the server, under
// login load: clients logging in without pause keep both hashing slots busy (argon2id, 19 MiB
// each). It logs the peak (VmHWM) and the RSS after the load, with the default memory limit
// and with GOMEMLIMIT=off, and checks that serve applies the default limit (an idle server,
// the hashing slots busy, the memory tier full) unless GOMEMLIMIT says otherwise. Its figures go
// in the README (from a run without -race); they are not asserted: they depend on the machine.
func TestLoginMemory(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["LOG_LEVEL"] = "warn"
	for _, tt := range []struct {
		limit string // GOMEMLIMIT; "" unset
		want  int64
	}{
		{"", 32<<20 + 2*20<<20 + 2000*2<<10},
		{"off", math.MaxInt64},
		{"300MiB", 300 << 20},
	} {
		env := maps.Clone(env)
		maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // optional: metrics
		env["METRICS_ADDR"] = maddr                       // optional: metrics
		if tt.limit != "" {
			env["GOMEMLIMIT"] = tt.limit
		}
		s := startChild(t, env)
		if s.Limit != tt.want {
			t.Errorf("GOMEMLIMIT=%q: the server's memory limit is %d, want %d", tt.limit, s.Limit, tt.want)
		}
		if tt.limit == "300MiB" {
			s.stop(t)
			continue // the limit is the point here, not the load
		}
		idle := s.status(t, "VmRSS")[0]
		clients, each := 8, 25
		if raceEnabled {
			each = 2 // the figures mean nothing under the race detector; the limit is still checked
		}
		start := time.Now()
		loginLoad(t, s.URL, clients, each)
		took := time.Since(start)
		st := s.status(t, "VmHWM", "VmRSS")
		t.Logf("GOMEMLIMIT=%q (%d MiB): RSS %d MiB idle; %d logins by %d clients in %v: peak RSS %d MiB, %d MiB after",
			tt.limit, s.Limit>>20, idle>>10, clients*each, clients, took.Round(time.Millisecond), st[0]>>10, st[1]>>10)
		// optional: metrics begin
		m := scrape(t, maddr)
		mib := func(name string) float64 { return m[name] / (1 << 20) }
		t.Logf("  after: Go runtime %.0f MiB from the OS, %.0f MiB returned; heap %.0f MiB in use, %.0f MiB mapped; next GC at %.0f MiB; %v collections",
			mib("go_memstats_sys_bytes"), mib("go_memstats_heap_released_bytes"), mib("go_memstats_heap_inuse_bytes"),
			mib("go_memstats_heap_sys_bytes"), mib("go_memstats_next_gc_bytes"), m["go_gc_duration_seconds_count"])
		// optional: metrics end
		s.stop(t)
	}
}
