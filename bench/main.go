// Command bench measures what the memory tier buys: warm GET /me against the template's server
// in tiered and Postgres-only modes and against a bare Fiber handler, on loopback
// and with a 1 ms database; then a scaling run, a stampede run and a CPU profile. It writes
// results/report.md and PNG plots, and prints the report. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	benchEmail    = "bench@example.com"
	benchPassword = "correct horse battery staple"
)

type options struct {
	quick      bool
	duration   time.Duration
	warmup     time.Duration
	reps       int
	conns      int
	delay      time.Duration
	capacity   int
	sessions   string
	repo       string
	out        string
	adminURL   string
	noScaling  bool
	noProfile  bool
	ratios     bool
	serverCore int
	loadCore   int
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve-app":
			if err := serveApp(); err != nil {
				log.Fatal(err)
			}
			return
		case "serve-bare", "serve-floor":
			if err := serveBare(os.Args[1] == "serve-floor"); err != nil {
				log.Fatal(err)
			}
			return
		}
	}
	var o options
	flag.BoolVar(&o.quick, "quick", false, "a ~2 minute run: shorter runs, fewer scaling points")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "load time per measured run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "load time before the scaling runs' measurement")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of each mode, interleaved")
	flag.IntVar(&o.conns, "conns", 64, "wrk connections")
	flag.DurationVar(&o.delay, "delay", time.Millisecond, "delay each way of the slow-database proxy")
	flag.IntVar(&o.capacity, "capacity", 2000, "SESSION_CACHE_CAPACITY of the scaling run")
	flag.StringVar(&o.sessions, "sessions", "100,1000,2000,5000,10000,100000", "distinct sessions of the scaling run")
	flag.StringVar(&o.repo, "repo", "..", "the template's repository root")
	flag.StringVar(&o.out, "out", "results", "directory for report.md, plots and profiles")
	flag.StringVar(&o.adminURL, "admin-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "a database on the server where the bench may CREATE DATABASE")
	flag.BoolVar(&o.noScaling, "no-scaling", false, "skip the scaling run")
	flag.BoolVar(&o.noProfile, "no-profile", false, "skip the CPU profile")
	flag.BoolVar(&o.ratios, "ratios", false, "only the stack against bare Fiber: bare, floor, tiered and tiered-error, interleaved (no Postgres-only modes, ablation, stampede, profile or scaling)")
	flag.IntVar(&o.serverCore, "server-core", 0, "CPU the server is pinned to")
	flag.IntVar(&o.loadCore, "load-core", 1, "CPU the bench, wrk and Postgres backends are pinned to")
	flag.Parse()
	if o.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.duration = 2 * time.Second
		}
		if !set["sessions"] {
			o.sessions = "100,2000,10000,100000"
		}
		if !set["reps"] {
			o.reps = 3
		}
		if !set["warmup"] {
			o.warmup = time.Second
		}
	}
	if err := pinSelf(o.loadCore); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

// pinSelf re-executes the bench under taskset on the load core, once, so that wrk, the proxy
// and everything else the bench starts stay off the server's core.
func pinSelf(core int) error {
	if os.Getenv("BENCH_PINNED") != "" || runtime.NumCPU() < 2 {
		return nil
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		log.Printf("taskset not found: server and load generator are not pinned")
		return nil //nolint:nilerr // without taskset the bench runs unpinned, as it logs
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"taskset", "-c", strconv.Itoa(core), self}, os.Args[1:]...)
	return syscall.Exec(taskset, args, append(os.Environ(), "BENCH_PINNED=1"))
}

func run(ctx context.Context, o options) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not found: install it (apt-get install -y wrk) or run 'task bench', which does")
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	started := time.Now()
	b, err := setup(ctx, o)
	if err != nil {
		return err
	}
	defer b.close()

	rep := &report{opts: o, started: started}
	rep.machine = machineInfo()
	if rep.modes, err = b.comparison(ctx); err != nil {
		return err
	}
	if o.ratios {
		o.noProfile, o.noScaling = true, true
	} else {
		if rep.ablation, rep.ablationOrder, err = b.ablation(ctx); err != nil {
			return err
		}
		if rep.stampede, err = b.stampede(ctx); err != nil {
			return err
		}
	}
	if !o.noProfile {
		if rep.profile, err = b.profile(ctx); err != nil {
			return err
		}
	}
	if !o.noScaling {
		var ns []int
		for _, s := range strings.Split(o.sessions, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				return fmt.Errorf("-sessions: %q is not a positive number", s)
			}
			ns = append(ns, n)
		}
		if rep.scaling, err = b.scaling(ctx, ns); err != nil {
			return err
		}
	}
	rep.elapsed = time.Since(started)
	md := rep.markdown()
	if err := os.WriteFile(filepath.Join(o.out, "report.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if len(rep.scaling) > 0 {
		if err := rep.plots(o.out); err != nil {
			return err
		}
	}
	fmt.Println(md)
	return nil
}

func machineInfo() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	pg := ""
	if out, err := exec.Command("psql", "--version").Output(); err == nil {
		pg = ", " + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d × %s, %s %s/%s%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH, pg)
}
