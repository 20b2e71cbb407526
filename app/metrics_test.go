package app

import (
	"log/slog"
	"testing"
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
