package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

type report struct {
	opts     options
	started  time.Time
	elapsed  time.Duration
	machine  string
	modes    []*modeResult
	stampede []stampedeResult
	profile  []profileResult
	scaling  []scalePoint

	ablation      map[string]benchLine // median per in-process benchmark
	ablationOrder []string
}

// stat is the median and range of a sample.
type stat struct{ med, lo, hi float64 }

func stats(xs []float64) stat {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return stat{}
	}
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stat{med, s[0], s[n-1]}
}

func (r *modeResult) rps() stat { return r.each(func(s sample) float64 { return s.wrk.RPS }) }
func (r *modeResult) cpu() stat { return r.each(sample.cpuPerRequest) }
func (r *modeResult) p50() stat { return r.each(func(s sample) float64 { return us(s.wrk.P50) }) }
func (r *modeResult) p99() stat { return r.each(func(s sample) float64 { return us(s.wrk.P99) }) }
func (r *modeResult) rss() stat {
	return r.each(func(s sample) float64 { return float64(s.rssKB) / 1024 })
}
func (r *modeResult) stmt() stat {
	return r.each(func(s sample) float64 { return per1k(s.xacts-r.baseline.xacts, s.wrk.Requests) })
}
func (r *modeResult) reads() stat {
	return r.each(func(s sample) float64 { return per1k(s.pkeyScans-r.baseline.pkeyScans, s.wrk.Requests) })
}

func (r *modeResult) each(f func(sample) float64) stat {
	var xs []float64
	for _, s := range r.samples {
		xs = append(xs, f(s))
	}
	return stats(xs)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func per1k(n, reqs int64) float64 {
	if reqs == 0 {
		return 0
	}
	return float64(n) / float64(reqs) * 1000
}

func (s stat) f(format string) string {
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s.med, s.lo, s.hi)
}

func (rep *report) find(mode string, slow bool) *modeResult {
	for _, r := range rep.modes {
		if r.cfg.mode == mode && r.cfg.slow == slow {
			return r
		}
	}
	return nil
}

func (rep *report) markdown() string {
	var b strings.Builder
	o := rep.opts
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Warm `GET /me`, one session per connection\n\n")
	p("Machine: %s. Run %s, took %s. Server pinned to CPU %d; wrk (1 thread, %d connections), the bench, its 1 ms proxy and the bench database's Postgres backends on CPU %d. %v per run, %d runs per mode, interleaved; median (min–max).\n\n",
		rep.machine, rep.started.Format("2006-01-02 15:04"), rep.elapsed.Round(time.Second), o.serverCore, o.conns, o.loadCore, o.duration, o.reps)
	p("| mode | req/s | server CPU µs / request | p50 µs | p99 µs | Postgres statements / 1k | session reads / 1k | RSS MiB |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.modes {
		if len(r.samples) == 0 {
			continue
		}
		st, rd := r.stmt().f("%.2f"), r.reads().f("%.2f")
		if r.cfg.mode == "bare" || r.cfg.mode == "floor" {
			st, rd = "—", "—"
		}
		p("| %v | %s | %s | %s | %s | %s | %s | %s |\n", r.cfg, r.rps().f("%.0f"), r.cpu().f("%.2f"), r.p50().f("%.0f"), r.p99().f("%.0f"), st, rd, r.rss().f("%.1f"))
	}
	p("\nStatements are `xact_commit + xact_rollback` of the bench database (pg_stat_database) over the server's whole life, minus that of the same life without the measured load; session reads are `idx_scan` of `sessions_pkey` counted the same way. Both come from Postgres, read after the server's backends exited (a live backend flushes its counters up to 10 s late).\n\n")

	p("### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	ratio := func(a, b *modeResult) (float64, bool) {
		if a == nil || b == nil || b.rps().med == 0 {
			return 0, false
		}
		return a.rps().med / b.rps().med, true
	}
	target := func(name, measured string, ok bool) {
		m := "no"
		if ok {
			m = "yes"
		}
		p("| %s | %s | %s |\n", name, measured, m)
	}
	if t := rep.find("tiered", false); t != nil {
		// Session reads, not all statements: the listener's lease pings (about two a second on
		// a server that hears no notification) count among the statements, and no request sends
		// them.
		r, s := t.reads(), t.stmt()
		target("session reads per 1,000 warm /me (tiered): 0", fmt.Sprintf("%.2f (%.2f–%.2f); all statements %.2f, the lease's pings", r.med, r.lo, r.hi, s.med), r.hi < 0.005 && r.lo > -0.005)
	}
	if x, ok := ratio(rep.find("tiered", false), rep.find("postgres", false)); ok {
		target("tiered ÷ Postgres-only ≥ 1.7 (loopback)", fmt.Sprintf("%.2f", x), x >= 1.7)
	}
	if x, ok := ratio(rep.find("tiered", true), rep.find("postgres", true)); ok {
		target("tiered ÷ Postgres-only ≥ 3 (1 ms database)", fmt.Sprintf("%.2f", x), x >= 3)
	}
	if len(rep.stampede) > 0 {
		var worst int64
		var parts []string
		for _, s := range rep.stampede {
			worst = max(worst, s.pkeyScans)
			parts = append(parts, fmt.Sprint(s.pkeyScans))
		}
		target(fmt.Sprintf("stampede: %d concurrent first requests, 1 Postgres read", stampedeConns), "reads per run: "+strings.Join(parts, ", "), worst == 1)
	}
	if len(rep.scaling) > 0 {
		flat, desc := rep.rssFlat()
		target(fmt.Sprintf("RSS flat beyond capacity (%d)", o.capacity), desc, flat)
	}
	// Against bare Fiber: req/s, and the inverse ratio of server CPU per request, which a
	// neighbour's load on the machine disturbs less (time the server waits is not counted).
	cpuRatio := func(a, b *modeResult) string {
		if a == nil || b == nil || a.cpu().med == 0 {
			return ""
		}
		return fmt.Sprintf("; by CPU per request %.2f", b.cpu().med/a.cpu().med)
	}
	bare := rep.find("bare", false)
	if x, ok := ratio(rep.find("tiered", false), bare); ok {
		target("/me ÷ bare Fiber ≥ 0.70 (defaults: every request logged at info)", fmt.Sprintf("%.2f%s", x, cpuRatio(rep.find("tiered", false), bare)), x >= 0.70)
	}
	if x, ok := ratio(rep.find("tiered-error", false), bare); ok {
		target("/me ÷ bare Fiber ≥ 0.78 (LOG_LEVEL=error)", fmt.Sprintf("%.2f%s", x, cpuRatio(rep.find("tiered-error", false), bare)), x >= 0.78)
	}
	if x, ok := ratio(rep.find("floor", false), bare); ok {
		p("| (the floor: bare Fiber with the server's timeouts and headers) ÷ bare Fiber | %.2f%s | — |\n", x, cpuRatio(rep.find("floor", false), bare))
	}
	rep.ablationMarkdown(p)

	if len(rep.stampede) > 0 {
		p("\n## Stampede\n\n%d connections opened first, then one `GET /me` each at once for one session, on a fresh tiered server (the session is cold).\n\n| database | 200 OK | Postgres reads (sessions_pkey idx_scan) | store's own count of reads |\n|---|---|---|---|\n", stampedeConns)
		for _, s := range rep.stampede {
			db := "loopback"
			if s.slow {
				db = "1 ms"
			}
			p("| %s | %d | %d | %d |\n", db, s.ok, s.pkeyScans, s.reads)
		}
	}

	if len(rep.scaling) > 0 {
		p("\n## Scaling: distinct sessions against a capacity of %d\n\nFresh tiered server per point, %v of warm-up, then %v of wrk over the sessions in a fixed pseudo-random order (uniform, or Zipf with s = 1.1). Hit ratio and reads from the store's counters (storage.Stats, read by the bench's wrapper; nothing new is exposed by the app).\n\n", o.capacity, o.warmup, o.duration)
		p("| sessions | access | req/s | p99 µs | hit ratio | Postgres reads / 1k | entries in memory | RSS MiB |\n|---|---|---|---|---|---|---|---|\n")
		for _, s := range rep.scaling {
			p("| %d | %s | %.0f | %.0f | %.3f | %.1f | %d | %.1f |\n", s.n, s.dist, s.rps, us(s.p99), s.hitRatio, s.readsPer, s.entries, float64(s.rssKB)/1024)
		}
		p("\n![hit ratio](scaling-hit.png) ![req/s](scaling-rps.png)\n\n![RSS](rss.png)\n")
	}

	for _, pr := range rep.profile {
		p("\n## CPU profile: warm `/me`, %s (%.0f req/s while profiled; `%s`)\n\nShare of CPU samples with the frame anywhere on the stack (groups nest).\n\n| where | CPU %% |\n|---|---|\n", pr.mode, pr.rps, filepath.Base(pr.file))
		for _, g := range pr.groups {
			p("| %s | %.1f |\n", strings.ReplaceAll(g.name, "  ", "&nbsp;&nbsp;"), g.pct)
		}
		p("\nTop functions by own (flat) time:\n\n| function | flat %% |\n|---|---|\n")
		for _, g := range pr.top {
			p("| `%s` | %.1f |\n", g.name, g.pct)
		}
	}
	return b.String()
}

// rssFlat says whether RSS stops growing once the sessions exceed the capacity: the largest
// point's RSS is within 15% of the RSS at the first point at or above the capacity.
func (rep *report) rssFlat() (bool, string) {
	var parts []string
	ok := true
	for _, dist := range []string{"uniform", "zipf"} {
		var at, last *scalePoint
		for i := range rep.scaling {
			s := &rep.scaling[i]
			if s.dist != dist {
				continue
			}
			if at == nil && s.n >= rep.opts.capacity {
				at = s
			}
			last = s
		}
		if at == nil || at == last {
			return false, "not enough points beyond the capacity"
		}
		g := float64(last.rssKB)/float64(at.rssKB) - 1
		ok = ok && g < 0.15
		parts = append(parts, fmt.Sprintf("%s: %.1f → %.1f MiB from %d to %d sessions", dist, float64(at.rssKB)/1024, float64(last.rssKB)/1024, at.n, last.n))
	}
	return ok, strings.Join(parts, "; ")
}

func (rep *report) plots(dir string) error {
	series := func(dist string, y func(scalePoint) float64) plotter.XYs {
		var xy plotter.XYs
		for _, s := range rep.scaling {
			if s.dist == dist {
				xy = append(xy, plotter.XY{X: float64(s.n), Y: y(s)})
			}
		}
		return xy
	}
	mk := func(title, ylabel, file string, y func(scalePoint) float64) error {
		pl := plot.New()
		pl.Title.Text = title
		pl.X.Label.Text = "distinct sessions (log)"
		pl.Y.Label.Text = ylabel
		pl.X.Scale = plot.LogScale{}
		pl.X.Tick.Marker = plot.LogTicks{Prec: -1}
		pl.Y.Min = 0
		if err := plotutil.AddLinePoints(pl, "uniform", series("uniform", y), "Zipf s=1.1", series("zipf", y)); err != nil {
			return err
		}
		return pl.Save(6*vg.Inch, 3.5*vg.Inch, filepath.Join(dir, file))
	}
	if err := mk(fmt.Sprintf("Hit ratio vs sessions (capacity %d)", rep.opts.capacity), "hit ratio", "scaling-hit.png", func(s scalePoint) float64 { return s.hitRatio }); err != nil {
		return err
	}
	if err := mk(fmt.Sprintf("req/s vs sessions (capacity %d)", rep.opts.capacity), "req/s", "scaling-rps.png", func(s scalePoint) float64 { return s.rps }); err != nil {
		return err
	}
	return mk(fmt.Sprintf("Server RSS vs sessions (capacity %d)", rep.opts.capacity), "RSS MiB", "rss.png", func(s scalePoint) float64 { return float64(s.rssKB) / 1024 })
}
