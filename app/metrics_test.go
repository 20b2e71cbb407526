package app

import (
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// METRICS_ADDR is the one variable where empty means something other than the default: no
// metrics listener.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"unset", nil, "127.0.0.1:9091"},
		{"empty", map[string]string{"METRICS_ADDR": ""}, ""},
		{"set", map[string]string{"METRICS_ADDR": "0.0.0.0:9100"}, "0.0.0.0:9100"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(env(tt.vars))
			if err != nil || cfg.MetricsAddr != tt.want {
				t.Errorf("got %q, %v; want %q", cfg.MetricsAddr, err, tt.want)
			}
		})
	}
}

// startMetrics with METRICS_ADDR empty listens nowhere and reports no address, yet returns the
// observers that count (tests/prometheus_test.go scrapes a listening one).
func TestStartMetricsOff(t *testing.T) {
	t.Parallel()
	called := false
	h := Hooks{MetricsReady: func(string) { called = true }}
	obs, stop, err := startMetrics(Config{MetricsAddr: ""}, nil, nil, h, slog.New(slog.DiscardHandler))
	if err != nil || obs.request == nil || obs.login == nil || called {
		t.Fatalf("got %v, observers %v %v, MetricsReady called %v; want no error, both observers, no call",
			err, obs.request != nil, obs.login != nil, called)
	}
	stop()
}

// Requests observed concurrently under a few label sets are each counted once, under their
// own labels, in the counter and in the histogram.
func TestObserveRequest(t *testing.T) {
	t.Parallel()
	m := newMetrics(nil, nil, nil) // its store and pool collectors are read only at a scrape
	type labels struct {
		route, method string
		status        int
	}
	sets := []labels{{"/me", "GET", 200}, {"/me", "GET", 401}, {"/login", "POST", 200}, {routeUnmatched, "GET", 404}, {"/me", "HEAD", 200}}
	const each = 200
	var wg sync.WaitGroup
	for _, l := range sets {
		for range 4 {
			wg.Go(func() {
				for range each / 4 {
					m.observeRequest(l.method, l.route, l.status, time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.requests, m.latency)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, counts := map[string]uint64{}, map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := ""
			for _, lp := range mt.GetLabel() {
				key += lp.GetName() + "=" + lp.GetValue() + " "
			}
			if mf.GetName() == "http_requests_total" {
				counts[key] = mt.GetCounter().GetValue()
			} else {
				got[key] = mt.GetHistogram().GetSampleCount()
			}
		}
	}
	if len(counts) != len(sets) {
		t.Errorf("counters %v, want one per label set of %v", counts, sets)
	}
	for _, l := range sets {
		k := "method=" + l.method + " route=" + l.route + " status=" + strconv.Itoa(l.status) + " "
		if counts[k] != each {
			t.Errorf("counter %s: %v, want %d", k, counts[k], each)
		}
	}
	want := map[string]uint64{"method=GET route=/me ": 2 * each, "method=POST route=/login ": each,
		"method=GET route=" + routeUnmatched + " ": each, "method=HEAD route=/me ": each}
	if len(got) != len(want) {
		t.Errorf("histograms %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("histogram %s: %d observations, want %d", k, got[k], n)
		}
	}
}
