package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// config is one server set-up of the comparison.
type config struct {
	mode string // tiered, tiered-error (LOG_LEVEL=error), postgres, bare, floor
	slow bool   // Postgres behind the delaying proxy
}

func (c config) String() string {
	if c.slow {
		return c.mode + " (1 ms db)"
	}
	return c.mode
}

// sample is one measured run.
type sample struct {
	wrk       wrkResult
	rssKB     int64
	cpuTicks  int64 // the server's CPU time during the measured load, in 1/100 s
	xacts     int64 // Postgres transactions during the whole server lifetime
	pkeyScans int64 // session reads by key during the whole server lifetime
}

// cpuPerRequest is the server's CPU time per request of the measured load, in µs.
func (s sample) cpuPerRequest() float64 {
	if s.wrk.Requests == 0 {
		return 0
	}
	return float64(s.cpuTicks) * 10_000 / float64(s.wrk.Requests)
}

type modeResult struct {
	cfg      config
	samples  []sample
	baseline sample // a server lifetime with everything but the measured load
}

const warmRequests = 200

// once runs one server lifetime of cfg: start, 200 warm-up requests, the measured load unless d
// is 0, stop; Postgres's counters are read around the lifetime.
func (b *bench) once(ctx context.Context, cfg config, d time.Duration) (sample, error) {
	var s sample
	before, err := b.snap(ctx)
	if err != nil {
		return s, err
	}
	srv, err := b.start(ctx, cfg.mode, cfg.slow, -1)
	if err != nil {
		return s, err
	}
	if err := b.warm(srv, cfg.mode); err != nil {
		srv.stop()
		return s, fmt.Errorf("%v warm-up: %w", cfg, err)
	}
	b.pinBackends(ctx)
	if d > 0 {
		cpu0 := srv.cpuTicks()
		s.wrk, err = runWrk(ctx, "http://"+srv.addr+"/me", d, b.o.conns, "", b.script, b.cookieFile, b.seqFile)
		s.cpuTicks = srv.cpuTicks() - cpu0
		if err == nil && (s.wrk.Non2xx > 0 || s.wrk.Errors > 0) {
			err = fmt.Errorf("%v: %d non-2xx responses, %d socket errors", cfg, s.wrk.Non2xx, s.wrk.Errors)
		}
		if err != nil {
			srv.stop()
			return s, err
		}
	}
	s.rssKB = srv.rssKB()
	srv.stop()
	after, err := b.snap(ctx)
	if err != nil {
		return s, err
	}
	s.xacts, s.pkeyScans = after.xacts-before.xacts, after.pkeyScans-before.pkeyScans
	return s, nil
}

// comparison runs every mode, interleaved, o.reps times.
func (b *bench) comparison(ctx context.Context) ([]*modeResult, error) {
	var res []*modeResult
	modes := []config{
		{"tiered", false}, {"tiered-error", false}, {"postgres", false}, {"bare", false}, {"floor", false},
		{"tiered", true}, {"postgres", true},
	}
	if b.o.ratios {
		modes = []config{{"tiered", false}, {"tiered-error", false}, {"bare", false}, {"floor", false}}
	}
	for _, c := range modes {
		res = append(res, &modeResult{cfg: c})
	}
	for _, r := range res {
		if r.cfg.mode == "bare" || r.cfg.mode == "floor" {
			continue
		}
		var err error
		if r.baseline, err = b.once(ctx, r.cfg, 0); err != nil {
			return nil, err
		}
	}
	// Each repetition runs the modes in a new order (the same orders on every bench run), so
	// that no mode always runs first or right after the same neighbour: on this machine the
	// noise follows position as much as mode.
	order := rand.New(rand.NewPCG(1, 2))
	for i := range b.o.reps {
		perm := order.Perm(len(res))
		for _, j := range perm {
			r := res[j]
			s, err := b.once(ctx, r.cfg, b.o.duration)
			if err != nil {
				return nil, err
			}
			step("run %d/%d %-20v %8.0f req/s  %5.2f µs CPU/req  p50 %v  p99 %v  RSS %d MiB  xacts %d  reads %d",
				i+1, b.o.reps, r.cfg, s.wrk.RPS, s.cpuPerRequest(), s.wrk.P50, s.wrk.P99, s.rssKB>>10, s.xacts-r.baseline.xacts, s.pkeyScans-r.baseline.pkeyScans)
			r.samples = append(r.samples, s)
		}
	}
	return res, nil
}

// comparisonSessions clones the login session into one session per connection and writes
// the cookie, order and Lua files of the comparison.
func (b *bench) comparisonSessions(ctx context.Context) error {
	cookies := make([]string, b.o.conns)
	for i := range cookies {
		cookies[i] = b.newCookie()
	}
	if err := b.clone(ctx, cookies); err != nil {
		return err
	}
	b.cookieFile = filepath.Join(b.tmp, "comparison-cookies.txt")
	b.seqFile = filepath.Join(b.tmp, "comparison-seq.txt")
	b.script = filepath.Join(b.tmp, "sessions.lua")
	var seq strings.Builder
	for i := range b.o.conns {
		fmt.Fprintln(&seq, i+1)
	}
	for _, f := range []struct{ path, text string }{
		{b.cookieFile, strings.Join(cookies, "\n") + "\n"}, {b.seqFile, seq.String()}, {b.script, luaScript},
	} {
		if err := os.WriteFile(f.path, []byte(f.text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// warm sends warmRequests GET /me, one for each comparison session in turn.
func (b *bench) warm(srv *server, mode string) error {
	data, err := os.ReadFile(b.cookieFile)
	if err != nil {
		return err
	}
	cookies := strings.Fields(string(data))
	for i := range warmRequests {
		c := cookies[i%len(cookies)]
		if mode == "bare" || mode == "floor" {
			c = ""
		}
		if err := get(srv.addr, c, 1); err != nil {
			return fmt.Errorf("%s warm-up: %w", mode, err)
		}
	}
	return nil
}

// clone copies the login session into a session for each cookie. The store keys rows by the
// SHA-256 (hex) of the cookie (storage.hashKey); v and e are Fiber's encoded session and its
// expiry, the same for every clone.
func (b *bench) clone(ctx context.Context, cookies []string) error {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO sessions (k, v, e, owner)
		SELECT encode(sha256(convert_to(c, 'UTF8')), 'hex'), s.v, s.e, s.owner
		FROM sessions s, unnest($1::text[]) AS c
		WHERE s.k = encode(sha256(convert_to($2::text, 'UTF8')), 'hex')`, cookies, b.cookie)
	if err != nil {
		return fmt.Errorf("clone sessions: %w", err)
	}
	return nil
}

// stampedeResult is one stampede: conns concurrent first requests for one cold session.
type stampedeResult struct {
	slow      bool
	ok        int
	pkeyScans int64 // Postgres reads of the session (idx_scan of sessions_pkey)
	reads     uint64
}

const stampedeConns = 200

func (b *bench) stampede(ctx context.Context) ([]stampedeResult, error) {
	var out []stampedeResult
	for i := range b.o.reps {
		for _, slow := range []bool{false, true} {
			r, err := b.stampedeOnce(ctx, slow)
			if err != nil {
				return nil, err
			}
			step("stampede %d/%d slow=%v: %d/%d OK, %d Postgres reads (store counted %d)", i+1, b.o.reps, slow, r.ok, stampedeConns, r.pkeyScans, r.reads)
			out = append(out, r)
		}
	}
	return out, nil
}

func (b *bench) stampedeOnce(ctx context.Context, slow bool) (stampedeResult, error) {
	r := stampedeResult{slow: slow}
	before, err := b.snap(ctx)
	if err != nil {
		return r, err
	}
	srv, err := b.start(ctx, "tiered", slow, -1) // a fresh server: the session is cold
	if err != nil {
		return r, err
	}
	defer srv.stop()
	conns := make([]net.Conn, stampedeConns)
	for i := range conns {
		if conns[i], err = net.Dial("tcp", srv.addr); err != nil {
			return r, err
		}
		defer conns[i].Close()
	}
	req := []byte("GET /me HTTP/1.1\r\nHost: bench\r\nCookie: session=" + b.cookie + "\r\n\r\n")
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(req); err != nil {
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				r.ok++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	st, err := srv.stats()
	if err != nil {
		return r, err
	}
	r.reads = st.Reads
	srv.stop()
	after, err := b.snap(ctx)
	if err != nil {
		return r, err
	}
	r.pkeyScans = after.pkeyScans - before.pkeyScans
	return r, nil
}

// scalePoint is one scaling run: n distinct sessions accessed with dist.
type scalePoint struct {
	n        int
	dist     string
	rps      float64
	p99      time.Duration
	hitRatio float64
	readsPer float64 // Postgres reads per 1,000 requests, from the store's counters
	rssKB    int64
	entries  int
}

// scaling clones the login session into max(ns) sessions, then for each n and distribution
// drives GET /me over the first n of them against a fresh tiered server with o.capacity.
func (b *bench) scaling(ctx context.Context, ns []int) ([]scalePoint, error) {
	maxN := 0
	for _, n := range ns {
		maxN = max(maxN, n)
	}
	cookies := make([]string, maxN)
	for i := range cookies {
		cookies[i] = b.newCookie()
	}
	step("clone the login session into %d sessions", maxN)
	if err := b.clone(ctx, cookies); err != nil {
		return nil, err
	}
	cookieFile := filepath.Join(b.tmp, "cookies.txt")
	if err := os.WriteFile(cookieFile, []byte(strings.Join(cookies, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	script := b.script
	var out []scalePoint
	for _, dist := range []string{"uniform", "zipf"} {
		for _, n := range ns {
			seqFile := filepath.Join(b.tmp, fmt.Sprintf("seq-%s-%d.txt", dist, n))
			if err := writeSeq(seqFile, dist, n, 200_000); err != nil {
				return nil, err
			}
			p, err := b.scaleOnce(ctx, n, dist, script, cookieFile, seqFile)
			if err != nil {
				return nil, err
			}
			step("scaling %-7s %6d sessions: %8.0f req/s  hit ratio %.3f  reads/1k %.1f  RSS %d MiB  entries %d",
				dist, n, p.rps, p.hitRatio, p.readsPer, p.rssKB>>10, p.entries)
			out = append(out, p)
		}
	}
	return out, nil
}

func (b *bench) scaleOnce(ctx context.Context, n int, dist, script, cookieFile, seqFile string) (scalePoint, error) {
	p := scalePoint{n: n, dist: dist}
	srv, err := b.start(ctx, "tiered", false, b.o.capacity)
	if err != nil {
		return p, err
	}
	defer srv.stop()
	url := "http://" + srv.addr + "/me"
	if _, err := runWrk(ctx, url, b.o.warmup, b.o.conns, "", script, cookieFile, seqFile); err != nil {
		return p, err
	}
	b.pinBackends(ctx)
	s0, err := srv.stats()
	if err != nil {
		return p, err
	}
	w, err := runWrk(ctx, url, b.o.duration, b.o.conns, "", script, cookieFile, seqFile)
	if err != nil {
		return p, err
	}
	if w.Non2xx > 0 || w.Errors > 0 {
		return p, fmt.Errorf("scaling %s %d: %d non-2xx responses, %d socket errors", dist, n, w.Non2xx, w.Errors)
	}
	s1, err := srv.stats()
	if err != nil {
		return p, err
	}
	p.rps, p.p99, p.rssKB, p.entries = w.RPS, w.P99, srv.rssKB(), s1.Entries
	hits, misses := float64(s1.Hits-s0.Hits), float64(s1.Misses-s0.Misses)
	if hits+misses > 0 {
		p.hitRatio = hits / (hits + misses)
	}
	if w.Requests > 0 {
		p.readsPer = float64(s1.Reads-s0.Reads) / float64(w.Requests) * 1000
	}
	return p, nil
}

// writeSeq writes count 1-based session indices drawn from dist over n sessions.
func writeSeq(path, dist string, n, count int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	var z *rand.Zipf
	if dist == "zipf" && n > 1 {
		z = rand.NewZipf(r, 1.1, 1, uint64(n-1)) // s = 1.1: session i+1 is used ~1/(i+1)^1.1 as often as the first
	}
	for range count {
		i := r.IntN(n)
		if z != nil {
			i = int(z.Uint64())
		}
		fmt.Fprintln(w, i+1)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
