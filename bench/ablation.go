package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// ablationBenchmarks are the template's in-process benchmarks that price each piece of the
// stack (app/bench_test.go): BenchmarkStack adds the pieces one at a time in newServer's order.
const ablationBenchmarks = "^(BenchmarkStack|BenchmarkSecurityHeaders|BenchmarkSessionIDValid)$"

// benchLine is one result line of go test -bench.
type benchLine struct {
	ns, cpu, bytes, allocs float64 // cpu: the process's CPU time per op, which waiting for a core does not inflate
}

var reBench = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) cpu-ns/op\s+([\d.]+) B/op\s+([\d.]+) allocs/op`)

// ablation runs the in-process benchmarks o.reps times, one go test per repetition (so that
// the repetitions of one piece are spread over the run, not back to back), pinned to the
// server's core, and returns each benchmark's median.
func (b *bench) ablation(ctx context.Context) (map[string]benchLine, []string, error) {
	runs := map[string][]benchLine{}
	var order []string
	for i := range b.o.reps {
		args := []string{"go", "test", "-run", "^$", "-bench", ablationBenchmarks, "-benchmem", "-count", "1", "./app"}
		if p, err := exec.LookPath("taskset"); err == nil {
			args = append([]string{p, "-c", strconv.Itoa(b.o.serverCore)}, args...)
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = b.o.repo
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return nil, nil, fmt.Errorf("go test -bench (ablation): %w: %s", err, tail(out.String(), 2000))
		}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			m := reBench.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			var l benchLine
			l.ns, _ = strconv.ParseFloat(m[2], 64)
			l.cpu, _ = strconv.ParseFloat(m[3], 64)
			l.bytes, _ = strconv.ParseFloat(m[4], 64)
			l.allocs, _ = strconv.ParseFloat(m[5], 64)
			if _, seen := runs[m[1]]; !seen {
				order = append(order, m[1])
			}
			runs[m[1]] = append(runs[m[1]], l)
		}
		step("ablation %d/%d: %d benchmarks", i+1, b.o.reps, len(runs))
	}
	med := map[string]benchLine{}
	for name, ls := range runs {
		pick := func(f func(benchLine) float64) float64 {
			xs := make([]float64, len(ls))
			for i, l := range ls {
				xs[i] = f(l)
			}
			return stats(xs).med
		}
		med[name] = benchLine{
			ns:     pick(func(l benchLine) float64 { return l.ns }),
			cpu:    pick(func(l benchLine) float64 { return l.cpu }),
			bytes:  pick(func(l benchLine) float64 { return l.bytes }),
			allocs: pick(func(l benchLine) float64 { return l.allocs }),
		}
	}
	return med, order, nil
}

// ablationPieces name BenchmarkStack's steps: each is the stack before it plus this piece.
var ablationPieces = map[string]string{
	"1-Config":      "Fiber configuration (trusted-proxy check, IP validation, error handler)",
	"2-GuardServer": "framing check and the security headers (guardServer)",
	"3-RequestLine": "request id, its contexts and the JSON request line (to io.Discard)",
	"4-Observers":   "the observers: request counter and latency histogram",
	"5-Recover":     "recover",
	"6-CrossOrigin": "cross-site check",
	"7-Guard":       "the session guard: signature, memory tier, expiry (the whole server, newServer)",
}

func (rep *report) ablationMarkdown(p func(string, ...any)) {
	med := rep.ablation
	if len(med) == 0 {
		return
	}
	p("\n## Ablation: each piece's cost, in process\n\n`go test -run '^$' -bench '%s' -benchmem ./app`, pinned to CPU %d, %d runs interleaved (one go test each); medians. A warm `GET /me` through Fiber's handler without the network; each line of `BenchmarkStack` is the one before plus one piece, so a piece's cost is the difference, in CPU time per request (cpu-ns/op: the process's CPU time, which waiting for a core on a shared machine does not inflate as it does ns/op).\n\n", ablationBenchmarks, rep.opts.serverCore, rep.opts.reps)
	p("| step | ns/op | cpu-ns/op | B/op | allocs/op | piece | its cost, cpu-ns | its allocs |\n|---|---|---|---|---|---|---|---|\n")
	var prev *benchLine
	var names []string
	for _, n := range rep.ablationOrder {
		if strings.HasPrefix(n, "BenchmarkStack/") {
			names = append(names, n)
		}
	}
	for _, n := range names {
		l := med[n]
		step := strings.TrimPrefix(n, "BenchmarkStack/")
		piece, cost, allocs := "bare Fiber, the same handler", "—", "—"
		if d, ok := ablationPieces[step]; ok && prev != nil {
			piece, cost, allocs = d, fmt.Sprintf("%+.0f", l.cpu-prev.cpu), fmt.Sprintf("%+.0f", l.allocs-prev.allocs)
		}
		if step == "8-LogError" {
			full := med["BenchmarkStack/7-Guard"]
			piece, cost, allocs = "the whole server with LOG_LEVEL=error (cost: what the request line at info adds)", fmt.Sprintf("%+.0f", full.cpu-l.cpu), fmt.Sprintf("%+.0f", full.allocs-l.allocs)
		}
		p("| %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %s |\n", step, l.ns, l.cpu, l.bytes, l.allocs, piece, cost, allocs)
		if step != "8-LogError" {
			lc := l
			prev = &lc
		}
	}
	bare, full, unlogged := med["BenchmarkStack/0-Bare"], med["BenchmarkStack/7-Guard"], med["BenchmarkStack/6-CrossOrigin"]
	if bare.cpu > 0 && unlogged.cpu > 0 {
		p("\nBy CPU time: the stack without the guard ÷ bare Fiber %.2f× (target ≤ 2×); with the guard ÷ without %.2f× (target ≤ 1.3×).\n", unlogged.cpu/bare.cpu, full.cpu/unlogged.cpu)
	}
	if none, ok := med["BenchmarkSecurityHeaders/None"]; ok {
		c, r, h := med["BenchmarkSecurityHeaders/Copied"], med["BenchmarkSecurityHeaders/Rendered"], med["BenchmarkSecurityHeaders/Helmet"]
		p("Security headers: copied from a header built once, as guardServer does, %+.0f cpu-ns; set one by one from fields rendered once %+.0f; helmet's middleware %+.0f (`BenchmarkSecurityHeaders`). ", c.cpu-none.cpu, r.cpu-none.cpu, h.cpu-none.cpu)
	}
	if v, ok := med["BenchmarkSessionIDValid"]; ok {
		p("Session id signature check: %.0f cpu-ns, %.0f allocs (`BenchmarkSessionIDValid`).", v.cpu, v.allocs)
	}
	p("\n")
}
