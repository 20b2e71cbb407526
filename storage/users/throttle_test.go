package users

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgtest"

	"github.com/gofiber-template/sessions/internal/testclock"
)

func newTestThrottle(t *testing.T, db *pgxpool.Pool, clock *testclock.Clock) *Throttle {
	t.Helper()
	cfg := DefaultConfig()
	cfg.AccountFailures, cfg.AddressFailures, cfg.HardLimit = 3, 10, 20
	cfg.Lockout, cfg.LockoutMax, cfg.FailureWindow = time.Minute, 5*time.Minute, 15*time.Minute
	return NewThrottle(db, cfg, queryTimeout, clock.Now)
}

func mustCheck(t *testing.T, th *Throttle, keys ...string) throttleState {
	t.Helper()
	st, err := th.check(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustFail(t *testing.T, th *Throttle, keys ...string) time.Duration {
	t.Helper()
	wait, err := th.fail(context.Background(), keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	return wait
}

func failures(t *testing.T, db *pgxpool.Pool, key string) int64 {
	t.Helper()
	return pgtest.Count(t, db, "SELECT failures FROM login_failures WHERE key = $1", key)
}

func TestThrottleLockoutDoublesThenForgets(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	th := newTestThrottle(t, db, clock)
	acct, addr := "account:ada", "address:192.0.2.1/32"

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
		if st := mustCheck(t, th, acct, addr); st.wait != time.Second {
			t.Fatalf("check a second before the end: got %+v, want 1s left", st)
		}
		clock.Advance(time.Second)
		if st := mustCheck(t, th, acct, addr); st.wait != 0 || !st.counted {
			t.Fatalf("check at the end: got %+v, want no wait, the account counted", st)
		}
	}
	if n := failures(t, db, acct); n != 7 {
		t.Errorf("account failures: got %d, want 7", n)
	}

	// A window after the throttle ended, the count is forgotten and starts again at 1; a
	// second earlier it is not.
	clock.Advance(15*time.Minute - time.Second)
	mustFail(t, th, "account:bob", addr) // keeps the address's count going
	if got := mustFail(t, th, acct); got != 5*time.Minute {
		t.Errorf("failure a second short of a quiet window: got throttled %v, want 5m", got)
	}
	clock.Advance(5*time.Minute + 15*time.Minute)
	if st := mustCheck(t, th, acct); st.wait != 0 {
		t.Errorf("check a window after the throttle: got %+v, want no wait", st)
	}
	mustFail(t, th, acct)
	if n := failures(t, db, acct); n != 1 {
		t.Errorf("account failures after a quiet window: got %d, want 1", n)
	}
	if n := pgtest.Count(t, db, "SELECT consecutive FROM login_failures WHERE key = $1", acct); n != 9 {
		t.Errorf("consecutive failures after a quiet window: got %d, want 9 (a window does not clear them)", n)
	}
}

// An attacker that guesses again the moment each throttle passes, for a day: the throttle
// never starts again from nothing, and the hard limit ends the guessing.
func TestThrottleAttackerNeverResetsAndHitsTheHardLimit(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	th := newTestThrottle(t, db, clock) // 3 failures, 1m doubling to 5m, window 15m, hard limit 20
	acct := "account:ada"
	end := clock.Now().Add(24 * time.Hour)
	guesses := 0
	for clock.Now().Before(end) {
		if st := mustCheck(t, th, acct, "address:192.0.2.1/32"); st.wait > 0 {
			clock.Advance(st.wait)
			continue
		}
		guesses++
		mustFail(t, th, acct, "address:192.0.2.1/32")
		th.locks = newLockSet(maxLocks) // each guess from a fresh instance: the database decides
	}
	if guesses != 20 {
		t.Errorf("guesses in a day at the fastest pace allowed: got %d, want 20 (the hard limit)", guesses)
	}
	if st := mustCheck(t, th, acct); st.wait != 5*time.Minute {
		t.Errorf("check at the hard limit: got %+v, want throttled for LockoutMax", st)
	}
	// A device of the account is not throttled by it.
	if st := mustCheck(t, th, "device:X"); st.wait != 0 {
		t.Errorf("check of a device: got %+v, want no wait", st)
	}
}

// Once a failure throttles a key, this instance refuses it from memory until the throttle
// ends: no statement, and a single attempt marked for the log.
func TestThrottleRemembersThrottledKeys(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewPool(t)
	var statements pgtest.Counter
	db := pgtest.PoolWithCounter(t, dbURL, &statements)
	clock := testclock.New(time.Now().Truncate(time.Microsecond))
	th := newTestThrottle(t, db, clock)
	for range 3 {
		mustFail(t, th, "account:ada", "address:192.0.2.1/32")
	}
	mark := statements.Mark()
	for i := range 10 {
		st := mustCheck(t, th, "account:ada", "address:192.0.2.9/32")
		if st.wait != time.Minute-time.Duration(i)*time.Second || !st.known || st.logged != (i > 0) {
			t.Fatalf("check %d: got %+v, want throttled %v, from memory, logged after the first", i, st, time.Minute-time.Duration(i)*time.Second)
		}
		clock.Advance(time.Second)
	}
	if n, sqls := statements.Since(mark); n != 0 {
		t.Errorf("statements of 10 throttled checks: got %d %q, want 0", n, sqls)
	}
	clock.Advance(50 * time.Second)
	if st := mustCheck(t, th, "account:ada", "address:192.0.2.9/32"); st.wait != 0 || st.known {
		t.Errorf("check when the throttle ends: got %+v, want no wait, read from the database", st)
	}
	if n, _ := statements.Since(mark); n != 1 {
		t.Errorf("statements once the throttle ended: got %d, want 1", n)
	}
}

func TestLockSetIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newLockSet(3)
	s.put("a", now, now.Add(time.Second), false)
	s.put("b", now, now.Add(time.Minute), false)
	s.put("c", now, now.Add(time.Minute), false)
	s.put("d", now, now.Add(time.Minute), false)
	if _, _, ok := s.get([]string{"d"}, now); ok || len(s.keys) != 3 {
		t.Errorf("a fourth key in a full set: got remembered (%d keys), want dropped", len(s.keys))
	}
	later := now.Add(time.Second) // a has ended
	s.put("d", later, later.Add(time.Minute), false)
	if _, _, ok := s.get([]string{"d"}, later); !ok || len(s.keys) != 3 {
		t.Errorf("a key once another ended: got %v (%d keys), want remembered in its place", ok, len(s.keys))
	}
}

func TestAddressKeyCountsPrefixes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr   string
		v4, v6 int
		want   string
	}{
		{"192.0.2.7", 32, 64, "address:192.0.2.7/32"},
		{"192.0.2.7", 24, 64, "address:192.0.2.0/24"},
		{"::ffff:192.0.2.7", 32, 64, "address:192.0.2.7/32"},
		{"2001:db8:1:2:3:4:5:6", 32, 64, "address:2001:db8:1:2::/64"},
		{"2001:0DB8:0001:0002::ff", 32, 64, "address:2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 32, 128, "address:2001:db8:1:2:3:4:5:6/128"},
		{"fe80::1%eth0", 32, 64, "address:fe80::/64"},
		{"not an address", 32, 64, "address:not an address"},
	} {
		if got := addressKey(tt.addr, tt.v4, tt.v6); got != tt.want {
			t.Errorf("addressKey(%q, %d, %d): got %q, want %q", tt.addr, tt.v4, tt.v6, got, tt.want)
		}
	}
}

func TestThrottleAddressAcrossAccountsAndClear(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	clock := testclock.New(time.Now().Truncate(time.Microsecond)) // PostgreSQL keeps microseconds
	th := newTestThrottle(t, db, clock)
	addr := "address:192.0.2.7/32"
	for i := range 10 { // ten accounts, two failures each: no account reaches 3
		acct := "account:" + strings.Repeat("x", i+1)
		mustFail(t, th, acct, addr)
		if i < 9 {
			mustFail(t, th, acct, "address:198.51.100.1/32")
		}
	}
	if st := mustCheck(t, th, "account:new", addr); st.wait != time.Minute {
		t.Errorf("an address with 10 failures (its limit) on other accounts: got %+v, want throttled 1m", st)
	}
	if st := mustCheck(t, th, "account:new", "address:192.0.2.8/32"); st.wait != 0 {
		t.Errorf("another address: got %+v, want no wait", st)
	}

	acct := "account:x"
	if err := th.clear(context.Background(), acct); err != nil {
		t.Fatal(err)
	}
	if st := mustCheck(t, th, acct, "address:192.0.2.8/32"); st.counted {
		t.Errorf("after clear: got %+v, want the account's count gone", st)
	}
	if st := mustCheck(t, th, acct, addr); st.wait == 0 {
		t.Errorf("after clearing an account: got %+v, want its address still throttled", st)
	}
}

func TestThrottleSweep(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	clock := testclock.New(time.Now().Truncate(time.Microsecond)) // PostgreSQL keeps microseconds
	th := newTestThrottle(t, db, clock)
	mustFail(t, th, "account:old", "address:192.0.2.1/32")
	for range 20 { // the hard limit
		mustFail(t, th, "account:locked")
	}
	clock.Advance(15 * time.Minute)
	mustFail(t, th, "account:new", "address:192.0.2.2/32")
	clock.Advance(5 * time.Minute) // the first address is now quiet for a window after its longest throttle

	if n, err := th.sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep: got %d, %v; want the first address deleted", n, err)
	}
	clock.Advance(countMemory)
	if n, err := th.sweep(context.Background()); err != nil || n != 3 {
		t.Fatalf("sweep a memory later: got %d, %v; want 3 rows deleted", n, err)
	}
	if n := pgtest.Count(t, db, "SELECT count(*) FROM login_failures WHERE key = 'account:locked'"); n != 1 {
		t.Errorf("rows of a key at the hard limit after the sweeps: got %d, want 1 (kept until a success or a new password)", n)
	}
}

// Far past its limit, a key's throttle stays at LockoutMax: the doubling never overflows.
func TestThrottleFarPastTheLimit(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	th := newTestThrottle(t, db, clock) // addresses: 10 failures, no hard limit
	for i := 1; i <= 80; i++ {
		wait, err := th.fail(context.Background(), []string{"account:a" + strings.Repeat("x", i), "address:192.0.2.1/32"}, 0)
		if err != nil {
			t.Fatalf("failure %d: %v", i, err)
		}
		if i >= 13 && wait != 5*time.Minute {
			t.Fatalf("failure %d: got throttled %v, want 5m (LockoutMax)", i, wait)
		}
	}
}
