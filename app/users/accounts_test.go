package users

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgtest"
)

// queryTimeout is the statement deadline of the tests' Accounts and Throttles, DB_QUERY_TIMEOUT's
// default.
const queryTimeout = 3 * time.Second

// mustCreate creates a user or fails the test.
func mustCreate(t testing.TB, db *pgxpool.Pool, email, password string) User {
	t.Helper()
	u, err := Create(context.Background(), db, email, password, 15)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestAuthenticateUnknownAndWrongLookAlike(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	mustCreate(t, db, "ada@example.com", "copper kettle on the stove")
	a := testAccounts(db, io.Discard)
	for _, tt := range []struct{ email, password string }{
		{"ada@example.com", "wrong password"},
		{"nobody@example.com", "wrong password"},
		{"", ""},
	} {
		u, ok, err := a.Authenticate(context.Background(), tt.email, tt.password, "192.0.2.1")
		if ok || err != nil || u.ID != 0 {
			t.Errorf("Authenticate(%q, %q): got %+v, %v, %v; want zero user, false, nil", tt.email, tt.password, u, ok, err)
		}
	}
}

func TestAuthenticateCancelled(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	a := testAccounts(db, io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok, err := a.Authenticate(ctx, "ada@example.com", "pw", "192.0.2.1"); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Authenticate with a cancelled context: got %v, %v; want false, context.Canceled", ok, err)
	}
}

// testAccounts returns Accounts over db, logging to w, with throttling limits
// too high to be reached and a wait for a hashing slot too long to run out on a loaded machine:
// tests of those set their own.
func testAccounts(db *pgxpool.Pool, w io.Writer) *Accounts {
	cfg := DefaultConfig()
	cfg.AccountFailures, cfg.AddressFailures = 1<<30, 1<<30
	cfg.HashWait = time.Minute
	return NewAccounts(db, cfg, queryTimeout, time.Now, slog.New(slog.NewTextHandler(w, nil)), nil)
}

// BenchmarkAuthenticate compares the two failures a client must not tell apart. Their times
// belong in notes, not in assertions.
func BenchmarkAuthenticate(b *testing.B) {
	db, _ := pgtest.NewPool(b)
	mustCreate(b, db, "ada@example.com", "copper kettle on the stove")
	a := testAccounts(db, io.Discard)
	for _, bb := range []struct{ name, email string }{
		{"WrongPassword", "ada@example.com"},
		{"UnknownEmail", "nobody@example.com"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := a.Authenticate(context.Background(), bb.email, "wrong password", "192.0.2.1"); ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// holdSlots takes every hashing slot of a, as logins being hashed would, and returns the
// function that gives them back.
func holdSlots(a *Accounts) (release func()) {
	for range cap(a.slots) {
		a.slots <- struct{}{}
	}
	return func() {
		for range cap(a.slots) {
			<-a.slots
		}
	}
}

// The slots are held by the test throughout, so no password can be hashed: what Authenticate
// answers is decided before any hashing.
func TestAuthenticateWaitsForASlotBoundedly(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	var log syncWriter
	a := testAccounts(db, &log)
	a.hashWait = 50 * time.Millisecond
	release := holdSlots(a)
	defer release()

	_, ok, err := a.Authenticate(context.Background(), "ada@example.com", "some password", "192.0.2.1")
	var later *TryLater
	if ok || !errors.As(err, &later) || later.Throttled || later.After != time.Second {
		t.Fatalf("no slot within LOGIN_HASH_WAIT: got %v, %v; want TryLater{After: 1s}, not throttled", ok, err)
	}
	if got := log.String(); !strings.Contains(got, "outcome=busy") {
		t.Errorf("log: got %q, want a line with outcome=busy", got)
	}
	if n := pgtest.Count(t, db, "SELECT count(*) FROM login_failures"); n != 0 {
		t.Errorf("failure rows after a login that was not checked: got %d, want 0", n)
	}
}

// Logins that waited for a slot while their account was being throttled by others are refused
// once they get it, unhashed and uncounted: the throttle is checked again inside the slot.
func TestAuthenticateRechecksTheThrottleInTheSlot(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewPool(t)
	var statements pgtest.Counter
	db := pgtest.PoolWithCounter(t, dbURL, &statements)
	mustCreate(t, db, "ada@example.com", "copper kettle on the stove")
	cfg := DefaultConfig()
	cfg.AccountFailures, cfg.HashWait = 3, time.Minute
	var log syncWriter
	a := NewAccounts(db, cfg, queryTimeout, time.Now, slog.New(slog.NewTextHandler(&log, nil)), nil)
	release := holdSlots(a)

	const waiting = 5
	errs := make(chan error, waiting)
	for range waiting {
		go func() {
			_, _, err := a.Authenticate(context.Background(), "ada@example.com", "copper kettle on the stove", "192.0.2.1")
			errs <- err
		}()
	}
	// Each has passed the first check once it has sent it; then it waits for a slot.
	waitFor(t, func() bool { _, n := statements.Count("FROM login_failures"); return n == waiting })
	// Meanwhile, elsewhere, the account reaches its limit.
	for range 3 {
		if _, err := a.throttle.fail(context.Background(), accountKey("ada@example.com"), addressKey("203.0.113.9")); err != nil {
			t.Fatal(err)
		}
	}
	release()
	for range waiting {
		var later *TryLater
		if err := <-errs; !errors.As(err, &later) || !later.Throttled {
			t.Errorf("a login that waited while its account was throttled: got %v, want TryLater{Throttled}", err)
		}
	}
	if n := pgtest.Count(t, db, "SELECT failures FROM login_failures WHERE key = '"+accountKey("ada@example.com")+"'"); n != 3 {
		t.Errorf("account failures: got %d, want 3 (throttled logins are not counted)", n)
	}
	if n := strings.Count(log.String(), "outcome=throttled"); n != waiting {
		t.Errorf("throttled log lines: got %d, want %d\n%s", n, waiting, log.String())
	}
}

// waitFor polls cond until it holds, or fails the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncWriter is a log destination safe for concurrent writers and a reading test.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

var _ io.Writer = (*syncWriter)(nil)
