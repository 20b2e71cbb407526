package app

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Requests observed concurrently under a few label sets are each counted once, under their
// own labels, in the counter and in the histogram.
func TestObserveRequest(t *testing.T) {
	t.Parallel()
	m := newMetrics(nil, nil) // its store and pool collectors are read only at a scrape
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
