// optional: metrics file

package tests

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
)

// scrape fetches the metrics at addr and returns every sample, keyed by its name and labels as
// the text format prints them (`http_requests_total{method="GET",route="/me",status="200"}`).
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: got %d, want 200", resp.StatusCode)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

// TestMetrics scrapes the metrics listener before and after a login and warm /me requests: the
// HTTP counters and the login outcome move, warm /me raises memory hits and sends no PostgreSQL
// read, a refresh past the touch interval counts a touch, the pool is reported, and a path
// that matches no route is counted under "unmatched".
func TestMetrics(t *testing.T) {
	t.Parallel()
	_, env := withUser(t)
	env["METRICS_ADDR"] = "127.0.0.1:0"
	metricsAddr := make(chan string, 1)
	clk := newClock()
	s := startServer(t, env, app.Hooks{MetricsReady: func(addr string) { metricsAddr <- addr }, Now: clk.Now})
	var maddr string
	select {
	case maddr = <-metricsAddr:
	case <-time.After(10 * time.Second):
		t.Fatal("the metrics listener did not report its address")
	}

	c := newClient(t)
	mustLogin(t, c, s, "ada@example.com", "correct horse battery staple")
	mustMe(t, c, s, 200) // fills memory if the login did not
	before := scrape(t, maddr)
	const warm = 5
	for range warm {
		mustMe(t, c, s, 200)
	}
	after := scrape(t, maddr)

	delta := func(name string) float64 { return after[name] - before[name] }
	for _, name := range []string{`http_requests_total{method="GET",route="/me",status="200"}`,
		"sessions_memory_hits_total", "sessions_memory_misses_total", "sessions_postgres_reads_total",
		"sessions_postgres_writes_total", "sessions_postgres_touches_total", `sessions_login_attempts_total{outcome="success"}`, "db_pool_acquires_total",
		"log_request_lines_dropped_total"} {
		if _, ok := after[name]; !ok {
			t.Errorf("metric %s is missing", name)
		}
		t.Logf("%s: %v before, %v after %d warm /me", name, before[name], after[name], warm)
	}
	if d := delta(`http_requests_total{method="GET",route="/me",status="200"}`); d != warm {
		t.Errorf("GET /me 200 counted %v more, want %d", d, warm)
	}
	if d := delta("sessions_memory_hits_total"); d < warm {
		t.Errorf("memory hits rose by %v over %d warm /me, want at least %d", d, warm, warm)
	}
	if d := delta("sessions_postgres_reads_total") + delta("sessions_postgres_touches_total"); d != 0 {
		t.Errorf("PostgreSQL reads and touches rose by %v over warm /me, want 0", d)
	}
	if after[`sessions_login_attempts_total{outcome="success"}`] != 1 {
		t.Errorf("login successes: got %v, want 1", after[`sessions_login_attempts_total{outcome="success"}`])
	}
	if after["db_pool_max_conns"] <= 0 || after["sessions_listener_up"] != 1 {
		t.Errorf("pool max %v, listener up %v; want a positive pool size and 1", after["db_pool_max_conns"], after["sessions_listener_up"])
	}
	if after[`http_request_duration_seconds_count{method="GET",route="/me"}`] < warm {
		t.Errorf("latency histogram of /me has %v observations, want at least %d",
			after[`http_request_duration_seconds_count{method="GET",route="/me"}`], warm)
	}

	// Past the touch interval, a /me refreshes the session: a touch, not a write.
	clk.Advance(2 * time.Hour) // the default interval is 1/100 of the 168 h idle timeout
	before = after
	mustMe(t, c, s, 200)
	after = scrape(t, maddr)
	if d, w := delta("sessions_postgres_touches_total"), delta("sessions_postgres_writes_total"); d != 1 || w != 0 {
		t.Errorf("a refresh counted %v touches and %v writes, want 1 and 0", d, w)
	}

	// A request that matches no route is counted under "unmatched", not its path.
	resp, err := c.Get(s.URL + "/no/such/page-12345")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if scrape(t, maddr)[`http_requests_total{method="GET",route="unmatched",status="404"}`] != 1 {
		t.Errorf("an unmatched path was not counted under route \"unmatched\"")
	}
}
