package users

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgtest"
)

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestThrottle(t *testing.T, db *pgxpool.Pool, clock *testClock) *Throttle {
	t.Helper()
	cfg := DefaultConfig()
	cfg.AccountFailures, cfg.AddressFailures = 3, 10
	cfg.Lockout, cfg.LockoutMax, cfg.FailureWindow = time.Minute, 5*time.Minute, 15*time.Minute
	return NewThrottle(db, cfg, queryTimeout, clock.Now)
}

func mustCheck(t *testing.T, th *Throttle, account, address string) throttleState {
	t.Helper()
	st, err := th.check(context.Background(), account, address)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustFail(t *testing.T, th *Throttle, account, address string) time.Duration {
	t.Helper()
	wait, err := th.fail(context.Background(), account, address)
	if err != nil {
		t.Fatal(err)
	}
	return wait
}

func TestThrottleLockoutDoublesThenForgets(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	clock := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	th := newTestThrottle(t, db, clock)
	acct, addr := accountKey("ada@example.com"), addressKey("192.0.2.1")

	for i := 1; i < 3; i++ {
		if wait := mustFail(t, th, acct, addr); wait != 0 {
			t.Fatalf("failure %d of a limit of 3: got throttled %v, want 0", i, wait)
		}
	}
	// The third failure reaches the limit: a minute, then 2, 4, and 5 (the cap), each counted
	// from the latest failure, which can only come once the previous throttle has passed.
	for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		if got := mustFail(t, th, acct, addr); got != want {
			t.Fatalf("fail: got throttled %v, want %v", got, want)
		}
		clock.Advance(want - time.Second)
		if st := mustCheck(t, th, acct, addr); st.wait != time.Second || !st.accountCounted {
			t.Fatalf("check a second before the end: got %+v, want 1s left, account counted", st)
		}
		clock.Advance(time.Second)
		if st := mustCheck(t, th, acct, addr); st.wait != 0 {
			t.Fatalf("check at the end: got %+v, want no wait", st)
		}
	}
	if n := pgtest.Count(t, db, "SELECT failures FROM login_failures WHERE key = '"+acct+"'"); n != 7 {
		t.Errorf("account failures: got %d, want 7", n)
	}

	// A window after the latest failure, the count is forgotten and starts again at 1.
	clock.Advance(15 * time.Minute)
	if st := mustCheck(t, th, acct, addr); st.wait != 0 || st.accountCounted {
		t.Errorf("check a window later: got %+v, want nothing on record", st)
	}
	mustFail(t, th, acct, addr)
	if n := pgtest.Count(t, db, "SELECT failures FROM login_failures WHERE key = '"+acct+"'"); n != 1 {
		t.Errorf("account failures after the window: got %d, want 1", n)
	}
}

func TestThrottleAddressAcrossAccountsAndClear(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	clock := &testClock{now: time.Now().Truncate(time.Microsecond)} // PostgreSQL keeps microseconds
	th := newTestThrottle(t, db, clock)
	addr := addressKey("192.0.2.7")
	for i := range 10 { // ten accounts, two failures each: no account reaches 3
		acct := accountKey(strings.Repeat("x", i+1) + "@example.com")
		mustFail(t, th, acct, addr)
		if i < 9 {
			mustFail(t, th, acct, addressKey("198.51.100.1"))
		}
	}
	if st := mustCheck(t, th, accountKey("new@example.com"), addr); st.wait != time.Minute {
		t.Errorf("an address with 10 failures (its limit) on other accounts: got %+v, want throttled 1m", st)
	}
	if st := mustCheck(t, th, accountKey("new@example.com"), addressKey("192.0.2.8")); st.wait != 0 {
		t.Errorf("another address: got %+v, want no wait", st)
	}

	acct := accountKey("x@example.com")
	if err := th.clear(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
	if st := mustCheck(t, th, acct, addressKey("192.0.2.8")); st.accountCounted {
		t.Errorf("after clear: got %+v, want the account's count gone", st)
	}
	if st := mustCheck(t, th, acct, addr); st.wait == 0 {
		t.Errorf("after clearing an account: got %+v, want its address still throttled", st)
	}
}

func TestThrottleSweep(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	clock := &testClock{now: time.Now().Truncate(time.Microsecond)} // PostgreSQL keeps microseconds
	th := newTestThrottle(t, db, clock)
	mustFail(t, th, accountKey("old@example.com"), addressKey("192.0.2.1"))
	clock.Advance(10 * time.Minute)
	mustFail(t, th, accountKey("new@example.com"), addressKey("192.0.2.2"))
	clock.Advance(5 * time.Minute) // the first two rows are now a window old

	n, err := th.sweep(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("sweep: got %d, %v; want 2 rows deleted", n, err)
	}
	if n := pgtest.Count(t, db, "SELECT count(*) FROM login_failures"); n != 2 {
		t.Errorf("rows after the sweep: got %d, want the 2 younger ones", n)
	}
}
