package app

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gofiber-template/sessions/storage"
)

// metrics holds the server's Prometheus metrics, in a registry of its own (no global state:
// tests run several servers in one process). It is safe for concurrent use.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // by route, method, status
	latency  *prometheus.HistogramVec // by route, method
	logins   *prometheus.CounterVec   // by outcome

	// The children of requests and latency for each label set seen, resolved once: a request
	// then costs one map lookup, not the hashing of its three labels twice. The map is never
	// modified once stored; a new label set stores a copy (there are few: routes × methods ×
	// statuses).
	children   atomic.Pointer[map[requestLabels]requestChildren]
	childrenMu sync.Mutex // serialises the copies
}

type requestLabels struct {
	route, method string
	status        int
}

type requestChildren struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// loginOutcomes are the outcomes of a login attempt, as users.Accounts logs and reports them.
var loginOutcomes = []string{"success", "failure", "throttled", "busy", "error"}

// newMetrics registers the HTTP, login, session store, pool, log, Go runtime and process
// metrics; lines (nil for none) is the log's writer of request lines.
func newMetrics(store *storage.Store, db *pgxpool.Pool, lines *lineWriter) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests answered, by route (\"unmatched\" for none), method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time from a request's arrival at the router to its response, by route and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessions_login_attempts_total",
			Help: "Login attempts by outcome: success, failure (bad credentials), throttled, busy (no hashing slot in time) or error.",
		}, []string{"outcome"}),
	}
	for _, o := range loginOutcomes {
		m.logins.WithLabelValues(o) // every outcome present from the start, at 0
	}
	m.reg.MustRegister(m.requests, m.latency, m.logins,
		storeCollector{store}, poolCollector{db},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "log_request_lines_dropped_total",
			Help: "Request log lines dropped because the log's writer fell behind (LOG_FLUSH_INTERVAL's buffer was full).",
		}, func() float64 {
			if lines == nil {
				return 0
			}
			return float64(lines.Dropped())
		}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// startMetrics registers the metrics and returns the observers that feed them and a function
// that stops their listener: unless METRICS_ADDR is empty, it serves them there, and calls
// h.MetricsReady with the address it listens on.
func startMetrics(cfg Config, store *storage.Store, db *pgxpool.Pool, h Hooks, log *slog.Logger) (obs observers, stop func(), err error) {
	m := newMetrics(store, db, requestLines(log))
	obs = observers{request: m.observeRequest, login: m.observeLogin}
	if cfg.MetricsAddr == "" {
		return obs, func() {}, nil
	}
	addr, stop, err := serveMetrics(cfg, m, log)
	if err != nil {
		return observers{}, nil, err
	}
	log.Info("serving metrics", "addr", addr, "path", "/metrics")
	if h.MetricsReady != nil {
		h.MetricsReady(addr)
	}
	return obs, stop, nil
}

// observeRequest counts one answered request. The registry keeps method and route as labels:
// they must be strings that outlive the request (requestMethod, a route's pattern), never a
// view of Fiber's buffers.
func (m *metrics) observeRequest(method, route string, status int, elapsed time.Duration) {
	k := requestLabels{route, method, status}
	ch, ok := requestChildren{}, false
	if p := m.children.Load(); p != nil {
		ch, ok = (*p)[k]
	}
	if !ok {
		ch = m.resolve(k)
	}
	ch.count.Inc()
	ch.latency.Observe(elapsed.Seconds())
}

// resolve returns the children of k, storing them for the next request.
func (m *metrics) resolve(k requestLabels) requestChildren {
	m.childrenMu.Lock()
	defer m.childrenMu.Unlock()
	old := map[requestLabels]requestChildren{}
	if p := m.children.Load(); p != nil {
		old = *p
	}
	if ch, ok := old[k]; ok {
		return ch
	}
	ch := requestChildren{
		count:   m.requests.WithLabelValues(k.route, k.method, strconv.Itoa(k.status)),
		latency: m.latency.WithLabelValues(k.route, k.method),
	}
	next := make(map[requestLabels]requestChildren, len(old)+1)
	maps.Copy(next, old)
	next[k] = ch
	m.children.Store(&next)
	return ch
}

// observeLogin counts one login attempt with this outcome. A nil m counts nothing.
func (m *metrics) observeLogin(outcome string) {
	if m != nil {
		m.logins.WithLabelValues(outcome).Inc()
	}
}

// serveMetrics starts serving GET /metrics on cfg.MetricsAddr, under the server's read and write
// timeouts, and returns the address it listens on and a function that stops it.
func serveMetrics(cfg Config, m *metrics, log *slog.Logger) (string, func(), error) {
	addr := cfg.MetricsAddr
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("cannot listen on %s (METRICS_ADDR; set it empty to serve no metrics): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr().String(), func() { _ = srv.Close(); <-done }, nil
}

// storeCollector reads the session store's counters (storage.Stats) at each scrape.
type storeCollector struct{ store *storage.Store }

var storeDescs = struct {
	hits, misses, reads, writes, touches, deletes, evictions, notifications, flushes, reconnects, entries, listening *prometheus.Desc
}{
	hits:          prometheus.NewDesc("sessions_memory_hits_total", "Session reads answered from memory.", nil, nil),
	misses:        prometheus.NewDesc("sessions_memory_misses_total", "Session reads that went to PostgreSQL (or joined a read in flight).", nil, nil),
	reads:         prometheus.NewDesc("sessions_postgres_reads_total", "Reads sent to PostgreSQL.", nil, nil),
	writes:        prometheus.NewDesc("sessions_postgres_writes_total", "Session writes sent to PostgreSQL.", nil, nil),
	touches:       prometheus.NewDesc("sessions_postgres_touches_total", "Session expiry refreshes sent to PostgreSQL (one another instance already made writes nothing).", nil, nil),
	deletes:       prometheus.NewDesc("sessions_deletes_total", "Sessions deleted through this instance.", nil, nil),
	evictions:     prometheus.NewDesc("sessions_memory_evictions_total", "Sessions dropped from memory to respect SESSION_CACHE_CAPACITY.", nil, nil),
	notifications: prometheus.NewDesc("sessions_notifications_total", "Change notifications received from PostgreSQL.", nil, nil),
	flushes:       prometheus.NewDesc("sessions_memory_flushes_total", "Times the whole memory tier was emptied (listener lost, reset).", nil, nil),
	reconnects:    prometheus.NewDesc("sessions_listener_reconnects_total", "Times the listener connected again after losing its connection.", nil, nil),
	entries:       prometheus.NewDesc("sessions_memory_entries", "Sessions in memory now.", nil, nil),
	listening:     prometheus.NewDesc("sessions_listener_up", "1 while the listener is listening (memory serves only then), else 0.", nil, nil),
}

func (storeCollector) Describe(ch chan<- *prometheus.Desc) {
	d := storeDescs
	for _, desc := range []*prometheus.Desc{d.hits, d.misses, d.reads, d.writes, d.touches, d.deletes, d.evictions, d.notifications, d.flushes, d.reconnects, d.entries, d.listening} {
		ch <- desc
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	st, d := c.store.Stats(), storeDescs
	counter := func(desc *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v))
	}
	counter(d.hits, st.Hits)
	counter(d.misses, st.Misses)
	counter(d.reads, st.Reads)
	counter(d.writes, st.Writes)
	counter(d.touches, st.Touches)
	counter(d.deletes, st.Deletes)
	counter(d.evictions, st.Evictions)
	counter(d.notifications, st.Invalidations)
	counter(d.flushes, st.Flushes)
	counter(d.reconnects, st.Reconnects)
	ch <- prometheus.MustNewConstMetric(d.entries, prometheus.GaugeValue, float64(st.Entries))
	listening := 0.0
	if st.Listening {
		listening = 1
	}
	ch <- prometheus.MustNewConstMetric(d.listening, prometheus.GaugeValue, listening)
}

// poolCollector reads the database pool's statistics (pgxpool.Stat) at each scrape.
type poolCollector struct{ db *pgxpool.Pool }

var poolDescs = struct {
	acquired, idle, total, max, acquires, emptyAcquires, canceledAcquires, acquireSeconds, newConns *prometheus.Desc
}{
	acquired:         prometheus.NewDesc("db_pool_acquired_conns", "Pool connections in use now.", nil, nil),
	idle:             prometheus.NewDesc("db_pool_idle_conns", "Idle pool connections now.", nil, nil),
	total:            prometheus.NewDesc("db_pool_total_conns", "Pool connections open now.", nil, nil),
	max:              prometheus.NewDesc("db_pool_max_conns", "Most connections the pool may open.", nil, nil),
	acquires:         prometheus.NewDesc("db_pool_acquires_total", "Connections acquired from the pool.", nil, nil),
	emptyAcquires:    prometheus.NewDesc("db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", nil, nil),
	canceledAcquires: prometheus.NewDesc("db_pool_canceled_acquires_total", "Acquires given up by their caller.", nil, nil),
	acquireSeconds:   prometheus.NewDesc("db_pool_acquire_seconds_total", "Time spent acquiring connections.", nil, nil),
	newConns:         prometheus.NewDesc("db_pool_new_conns_total", "Connections the pool opened.", nil, nil),
}

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	d := poolDescs
	for _, desc := range []*prometheus.Desc{d.acquired, d.idle, d.total, d.max, d.acquires, d.emptyAcquires, d.canceledAcquires, d.acquireSeconds, d.newConns} {
		ch <- desc
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	st, d := c.db.Stat(), poolDescs
	gauge := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	counter := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v)
	}
	gauge(d.acquired, float64(st.AcquiredConns()))
	gauge(d.idle, float64(st.IdleConns()))
	gauge(d.total, float64(st.TotalConns()))
	gauge(d.max, float64(st.MaxConns()))
	counter(d.acquires, float64(st.AcquireCount()))
	counter(d.emptyAcquires, float64(st.EmptyAcquireCount()))
	counter(d.canceledAcquires, float64(st.CanceledAcquireCount()))
	counter(d.acquireSeconds, st.AcquireDuration().Seconds())
	counter(d.newConns, float64(st.NewConnsCount()))
}
