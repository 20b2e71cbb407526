package storage

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/internal/pgtest"
)

// traffic writes a session on s every interval until the test ends, so that the listeners of
// other instances are never silent for long, as under real load.
func traffic(t *testing.T, s *Store, interval time.Duration) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = s.Set("traffic", []byte(strconv.Itoa(i)), time.Hour)
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// staleFor polls key on s for watch after from and returns how long after from s last
// answered want (0 if it never did).
func staleFor(t *testing.T, s *Store, key, want string, from time.Time, watch time.Duration) time.Duration {
	t.Helper()
	var last time.Time
	for time.Since(from) < watch {
		if string(mustGet(t, s, key)) == want {
			last = time.Now() // after the answer: never shorter than the real window
		}
		time.Sleep(2 * time.Millisecond)
	}
	if last.IsZero() {
		return 0
	}
	return last.Sub(from)
}

// TestPostgresDelayedListenerServesWithinLease checks the lease against a slow path rather
// than a hung one: B's listening connection delivers everything, in order, but seconds late,
// while A keeps writing so that B's listener is never silent. A session deleted on A must not
// be served by B later than the lease after the delete began (B's clock, the test's), whether
// the delete lands as the delay begins or once it has lasted.
func TestPostgresDelayedListenerServesWithinLease(t *testing.T) {
	t.Parallel()
	defaults := DefaultConfig()
	// The bound is the lease; the margin is for a loaded machine's timers.
	const margin = 300 * time.Millisecond
	for _, delay := range []time.Duration{2 * time.Second, 4 * time.Second} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			dbURL := pgtest.NewURL(t)
			pool := pgtest.Pool(t, dbURL)
			proxy := pgtest.NewProxy(t, dbURL)
			a := newPGStore(t, pool, nil)
			b := newPGStore(t, pool, func(c *Config) {
				c.Lease, c.HealthInterval = defaults.Lease, defaults.HealthInterval
				c.ListenURL = proxy.URL(dbURL)
				// Long enough for every round trip through the delay to be answered: the
				// bound must not depend on a timeout cutting the slow connection.
				c.QueryTimeout = 4 * delay
			})
			traffic(t, a, 50*time.Millisecond)
			for _, k := range []string{"early", "late", "after"} {
				mustSet(t, a, k, "v", time.Hour)
			}

			// A healthy link: memory serves, lease after lease, with notifications flowing.
			wantValue(t, mustGet(t, b, "early"), "v")
			wantValue(t, mustGet(t, b, "late"), "v")
			st0, start := b.Stats(), time.Now()
			for time.Since(start) < 2*defaults.Lease {
				wantValue(t, mustGet(t, b, "early"), "v")
				time.Sleep(5 * time.Millisecond)
			}
			st1 := b.Stats()
			if st1.Reads != st0.Reads {
				t.Fatalf("B read PostgreSQL %d times over %v on a healthy link, want 0: memory must serve", st1.Reads-st0.Reads, 2*defaults.Lease)
			}
			t.Logf("healthy link: %.1f pings/s", float64(st1.Pings-st0.Pings)/time.Since(start).Seconds())

			proxy.Delay(delay)
			began := time.Now()
			if err := a.Delete("early"); err != nil {
				t.Fatal(err)
			}
			committed := time.Since(began)
			// Watch long enough for the delayed stream to settle into its new rhythm.
			early := staleFor(t, b, "early", "v", began, 2*delay+time.Second)

			began = time.Now()
			if err := a.Delete("late"); err != nil {
				t.Fatal(err)
			}
			late := staleFor(t, b, "late", "v", began, delay+defaults.Lease+time.Second)
			t.Logf("delivery delayed %v each way: B served a deleted session %v after the delete as the delay began, %v after one once it had lasted (lease %v; each delete committed within %v of its start)",
				delay, early.Round(time.Millisecond), late.Round(time.Millisecond), defaults.Lease, committed.Round(time.Millisecond))
			limit := defaults.Lease + margin
			if early > limit {
				t.Errorf("as the delay began: B served the deleted session %v after the delete, want at most the lease (%v)", early, limit)
			}
			if late > limit {
				t.Errorf("once the delay had lasted: B served the deleted session %v after the delete, want at most the lease (%v)", late, limit)
			}

			// Once the path is fast again, memory serves again.
			proxy.Delay(0)
			eventually(t, 2*delay+5*time.Second, "B serves from memory again", func() bool {
				h := b.Stats().Hits
				_, _ = b.Get("after")
				_, _ = b.Get("after")
				return b.Stats().Hits > h
			})
		})
	}
}
