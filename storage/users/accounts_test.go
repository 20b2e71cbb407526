package users

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
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
	u, err := Store{DB: db, Timeout: queryTimeout}.Create(context.Background(), email, password, 15)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// attempt is an Attempt from 192.0.2.1 without a device cookie.
func attempt(email, password string) Attempt {
	return Attempt{Email: email, Password: password, Address: "192.0.2.1"}
}

func TestCheckUnknownAndWrongLookAlike(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	mustCreate(t, db, "ada@example.com", "copper kettle on the stove")
	g := testGate(db, io.Discard)
	for _, tt := range []struct{ email, password string }{
		{"ada@example.com", "wrong password"},
		{"nobody@example.com", "wrong password"},
		{"", ""},
	} {
		u, err := g.Check(context.Background(), attempt(tt.email, tt.password))
		if !errors.Is(err, ErrBadCredentials) || u.ID != 0 {
			t.Errorf("Check(%q, %q): got %+v, %v; want zero user, ErrBadCredentials", tt.email, tt.password, u, err)
		}
	}
	if u, err := g.Check(context.Background(), attempt(" ADA@example.com", "copper kettle on the stove")); err != nil || u.Email != "ada@example.com" {
		t.Errorf("Check with the right password: got %+v, %v; want Ada", u, err)
	}
}

func TestCheckCancelled(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	g := testGate(db, io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Check(ctx, attempt("ada@example.com", "pw")); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a cancelled context: got %v, want context.Canceled", err)
	}
}

// The dummy hash of unknown emails is made by NewGate, so that the first unknown email after a
// start costs what any other does.
func TestNewGateMakesTheDummyHash(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	g := testGate(db, io.Discard)
	if _, err := parseHash(g.dummy); err != nil {
		t.Errorf("dummy hash right after NewGate: got %q (%v), want a hash", g.dummy, err)
	}
}

// testKey is the secret key of the tests' gates.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// testGate returns a Gate over db, logging to w, with throttling limits too high to be reached
// and a wait for a hashing slot too long to run out on a loaded machine: tests of those set
// their own.
func testGate(db *pgxpool.Pool, w io.Writer) *Gate {
	cfg := DefaultConfig()
	cfg.AccountFailures, cfg.AddressFailures = 1<<30, 1<<30
	cfg.HashWait = time.Minute
	return NewGate(db, cfg, testKey, queryTimeout, time.Now, slog.New(slog.NewTextHandler(w, nil)), nil)
}

// BenchmarkCheck compares the two failures a client must not tell apart. Their times belong in
// notes, not in assertions.
func BenchmarkCheck(b *testing.B) {
	db, _ := pgtest.NewPool(b)
	mustCreate(b, db, "ada@example.com", "copper kettle on the stove")
	g := testGate(db, io.Discard)
	for _, bb := range []struct{ name, email string }{
		{"WrongPassword", "ada@example.com"},
		{"UnknownEmail", "nobody@example.com"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := g.Check(context.Background(), attempt(bb.email, "wrong password")); !errors.Is(err, ErrBadCredentials) {
					b.Fatal(err)
				}
			}
		})
	}
}

// holdSlots takes every hashing slot of g that strangers may use, as logins being hashed would,
// and returns the function that gives them back.
func holdSlots(g *Gate) (release func()) {
	for range cap(g.slots) {
		g.slots <- struct{}{}
	}
	return func() {
		for range cap(g.slots) {
			<-g.slots
		}
	}
}

// The slots are held by the test throughout, so no password can be hashed: what Check answers
// is decided before any hashing.
func TestCheckWaitsForASlotBoundedly(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	var log syncWriter
	g := testGate(db, &log)
	g.hashWait = 50 * time.Millisecond
	release := holdSlots(g)
	defer release()

	_, err := g.Check(context.Background(), attempt("ada@example.com", "some password"))
	var busy *BusyError
	if !errors.As(err, &busy) || busy.RetryAfter != time.Second {
		t.Fatalf("no slot within LOGIN_HASH_WAIT: got %v; want BusyError{RetryAfter: 1s}", err)
	}
	if got := log.String(); !strings.Contains(got, "outcome=busy") {
		t.Errorf("log: got %q, want a line with outcome=busy", got)
	}
	if n := pgtest.Count(t, db, "SELECT count(*) FROM login_failures"); n != 0 {
		t.Errorf("failure rows after a login that was not checked: got %d, want 0", n)
	}
}

// With every strangers' slot held, a known device still gets the slot kept for known devices:
// a flood of strangers cannot starve a browser that logged in before.
func TestKnownDeviceHasItsOwnSlot(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	mustCreate(t, db, "ada@example.com", "copper kettle on the stove")
	g := testGate(db, io.Discard)
	g.hashWait = 50 * time.Millisecond
	a := attempt("ada@example.com", "copper kettle on the stove")
	if _, err := g.Check(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	a.Device = g.Device(a)
	release := holdSlots(g)
	defer release()
	if _, err := g.Check(context.Background(), a); err != nil {
		t.Errorf("known device with every other slot taken: got %v, want a login", err)
	}
	stranger := attempt("ada@example.com", "copper kettle on the stove")
	if _, err := g.Check(context.Background(), stranger); !errors.As(err, new(*BusyError)) {
		t.Errorf("stranger with every strangers' slot taken: got %v, want BusyError", err)
	}
	other := attempt("bob@example.com", "x")
	other.Device = a.Device // Ada's device cookie, for another account: a stranger's
	if _, err := g.Check(context.Background(), other); !errors.As(err, new(*BusyError)) {
		t.Errorf("device cookie of another account: got %v, want BusyError (a stranger)", err)
	}
}

func TestDeviceCookies(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	g := testGate(db, io.Discard)
	a := attempt("Ada@Example.com", "pw")
	d := g.Device(a)
	if _, ok := g.deviceID("ada@example.com", d); !ok {
		t.Fatalf("device cookie %q is not valid for its own account", d)
	}
	a.Device = d
	if again := g.Device(a); again != d {
		t.Errorf("Device with a valid cookie: got %q, want it kept (%q)", again, d)
	}
	other := NewGate(db, DefaultConfig(), []byte("another key, another deployment!"), queryTimeout, time.Now, slog.New(slog.DiscardHandler), nil)
	altered := []byte(d)
	altered[len(altered)-1] ^= 'A' ^ 'B'
	for name, tt := range map[string]struct {
		g      *Gate
		email  string
		cookie string
	}{
		"another account":    {g, "bob@example.com", d},
		"another deployment": {other, "ada@example.com", d},
		"altered":            {g, "ada@example.com", string(altered)},
		"empty":              {g, "ada@example.com", ""},
		"lower case":         {g, "ada@example.com", strings.ToLower(d)},
		"too long":           {g, "ada@example.com", d + "A"},
	} {
		if _, ok := tt.g.deviceID(tt.email, tt.cookie); ok {
			t.Errorf("%s: cookie accepted, want refused", name)
		}
	}
}

// Logins that waited for a slot while their account was being throttled by others are refused
// once they get it, unhashed and uncounted: the throttle is checked again inside the slot.
func TestCheckRechecksTheThrottleInTheSlot(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewPool(t)
	var statements pgtest.Counter
	db := pgtest.PoolWithCounter(t, dbURL, &statements)
	mustCreate(t, db, "ada@example.com", "copper kettle on the stove")
	cfg := DefaultConfig()
	cfg.AccountFailures, cfg.HashWait = 3, time.Minute
	var log syncWriter
	g := NewGate(db, cfg, testKey, queryTimeout, time.Now, slog.New(slog.NewTextHandler(&log, nil)), nil)
	release := holdSlots(g)

	const waiting = 5
	errs := make(chan error, waiting)
	for range waiting {
		go func() {
			_, err := g.Check(context.Background(), attempt("ada@example.com", "copper kettle on the stove"))
			errs <- err
		}()
	}
	// Each passes the first check, then waits for a slot: wait until all of them are parked
	// there, so that each must recheck once it gets one.
	waitFor(t, func() bool { return parkedInSlot() == waiting })
	// Meanwhile, elsewhere, the account reaches its limit.
	for range 3 {
		if _, err := g.throttle.fail(context.Background(), []string{g.accountKey("ada@example.com"), "address:203.0.113.9/32"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	release()
	for range waiting {
		if err := <-errs; !errors.As(err, new(*ThrottledError)) {
			t.Errorf("a login that waited while its account was throttled: got %v, want ThrottledError", err)
		}
	}
	if n := pgtest.Count(t, db, "SELECT failures FROM login_failures WHERE key = $1", g.accountKey("ada@example.com")); n != 3 {
		t.Errorf("account failures: got %d, want 3 (throttled logins are not counted)", n)
	}
	// One line per key per throttle, not per refused login.
	if n := strings.Count(log.String(), "outcome=throttled"); n != 1 {
		t.Errorf("throttled log lines: got %d, want 1\n%s", n, log.String())
	}
}

// parkedInSlot counts the goroutines waiting for a hashing slot in Gate.slot.
func parkedInSlot() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "users.(*Gate).slot(")
		}
		buf = make([]byte, 2*len(buf))
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
