package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gofiber-template/sessions/internal/testclock"
)

// newTestStore returns a Store over a fakeTier with a fake clock, closed when the test ends.
func newTestStore(t *testing.T, capacity int) (*Store, *fakeTier, *testclock.Clock) {
	t.Helper()
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.Capacity = capacity
	cfg.Now = clock.Now
	cfg.QueryTimeout = time.Minute
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ft := newFakeTier(clock.Now)
	s := newStore(ft, nil, cfg, true)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, ft, clock
}

func mustGet(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

func mustSet(t *testing.T, s *Store, key, val string, exp time.Duration) {
	t.Helper()
	if err := s.Set(key, []byte(val), exp); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func wantValue(t *testing.T, got []byte, want string) {
	t.Helper()
	if want == "" && got != nil {
		t.Fatalf("got %q, want nil", got)
	}
	if want != "" && string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// inMemory reports whether key has an entry in the memory tier.
func inMemory(s *Store, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return false
	}
	_, ok := s.mem.lookup(hashKey(key))
	return ok
}

func TestHitTouchesNoDatabase(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "1", time.Hour)
	for range 5 {
		wantValue(t, mustGet(t, s, "a"), "1")
	}
	if n := ft.gets.Load(); n != 0 {
		t.Fatalf("got %d tier reads after Set then Get, want 0", n)
	}
	if st := s.Stats(); st.Hits != 5 || st.Misses != 0 || st.Entries != 1 {
		t.Fatalf("got %+v, want 5 hits, 0 misses, 1 entry", st)
	}
}

func TestMissReadsOnceAndFills(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("a"), []byte("1"), clock.Now().Unix()+100)
	wantValue(t, mustGet(t, s, "a"), "1")
	wantValue(t, mustGet(t, s, "a"), "1")
	if n := ft.gets.Load(); n != 1 {
		t.Fatalf("got %d tier reads, want 1", n)
	}
	wantValue(t, mustGet(t, s, "missing"), "")
	if inMemory(s, "missing") {
		t.Fatal("a miss on an absent key left an entry in memory")
	}
}

func TestReturnedValuesAreCopies(t *testing.T) {
	s, _, _ := newTestStore(t, 10)
	buf := []byte("abc")
	if err := s.Set("a", buf, time.Hour); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X' // Fiber reuses its buffers
	v := mustGet(t, s, "a")
	v[1] = 'Y'
	wantValue(t, mustGet(t, s, "a"), "abc")
}

func TestConcurrentMissesShareOneRead(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("cold"), []byte("v"), clock.Now().Unix()+100)
	release := make(chan struct{})
	ft.beforeGet = func(context.Context, string) error { <-release; return nil }

	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			v, err := s.Get("cold")
			if err == nil && string(v) != "v" {
				err = fmt.Errorf("got %q, want %q", v, "v")
			}
			errs <- err
		})
	}
	// Every goroutine has joined the read once all of them have counted a miss.
	waitFor(t, func() bool { return s.Stats().Misses == n })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := ft.gets.Load(); got != 1 {
		t.Fatalf("got %d tier reads for %d concurrent misses, want 1", got, n)
	}
}

// waitFor polls cond until it holds; the test's own deadline bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

func TestEntryNeverOutlivesRow(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	// Filled on a miss: the row expires in 5 s.
	ft.put(hashKey("miss"), []byte("1"), clock.Now().Unix()+5)
	wantValue(t, mustGet(t, s, "miss"), "1")
	// Filled by Set for 2.5 s: the row keeps whole seconds, rounded down, so 2 s.
	clock.Advance(300 * time.Millisecond)
	mustSet(t, s, "set", "2", 2500*time.Millisecond)

	clock.Advance(1900 * time.Millisecond) // 2.2 s after the Set, 2.2 s into the miss row
	wantValue(t, mustGet(t, s, "miss"), "1")
	if inMemory(s, "set") && s.mem.index[hashKey("set")].deadline.After(time.Unix(ft.row("set").e, 0)) {
		t.Fatal("entry filled by Set outlives its row")
	}
	wantValue(t, mustGet(t, s, "set"), "")

	clock.Advance(2800 * time.Millisecond) // 5 s into the miss row
	wantValue(t, mustGet(t, s, "miss"), "")
	if inMemory(s, "miss") || inMemory(s, "set") {
		t.Fatal("expired entries still in memory")
	}
}

func TestMaxAgeBoundsEntriesWithoutExpiry(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	mustSet(t, s, "forever", "1", 0)
	ft.put(hashKey("forever"), []byte("changed behind our back"), 0)
	clock.Advance(s.cfg.MaxAge - time.Nanosecond)
	wantValue(t, mustGet(t, s, "forever"), "1")
	clock.Advance(time.Nanosecond)
	wantValue(t, mustGet(t, s, "forever"), "changed behind our back")
}

func TestFailedSetLeavesNoNewValue(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "old", time.Hour)
	ft.setErr = errBoom
	if err := s.Set("a", []byte("new"), time.Hour); !errors.Is(err, errBoom) {
		t.Fatalf("got %v, want %v", err, errBoom)
	}
	if inMemory(s, "a") {
		t.Fatal("memory holds a copy after a failed write")
	}
	wantValue(t, mustGet(t, s, "a"), "old")
}

func TestSetWhoseDeadlineStruckAfterCommitLeavesMemoryEmpty(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	ft.afterSet = func(string) { cancel() } // the commit happened; the caller gave up
	if err := s.SetWithContext(ctx, "a", []byte("1"), time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if inMemory(s, "a") {
		t.Fatal("memory holds a write whose outcome is unknown")
	}
	ft.afterSet = nil
	wantValue(t, mustGet(t, s, "a"), "1")
}

func TestNegativeExpiryIsAnError(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	if err := s.Set("a", []byte("1"), -time.Second); err == nil {
		t.Fatal("got nil error for a negative expiry")
	}
	if ft.sets.Load() != 0 {
		t.Fatal("a rejected Set reached the tier")
	}
}

func TestEmptyKeyOrValueIsIgnored(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	if err := s.Set("", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("a", nil, 0); err != nil {
		t.Fatal(err)
	}
	wantValue(t, mustGet(t, s, ""), "")
	if err := s.Delete(""); err != nil {
		t.Fatal(err)
	}
	if ft.sets.Load() != 0 || ft.gets.Load() != 0 {
		t.Fatal("an empty key or value reached the tier")
	}
}

// raceRead starts a Get of key that stops inside the tier right after reading the row, and
// returns a function that lets it finish and returns what it returned.
func raceRead(t *testing.T, s *Store, ft *fakeTier, key string) (finish func() []byte) {
	t.Helper()
	read := make(chan struct{})
	proceed := make(chan struct{})
	ft.afterGet = func(string) {
		close(read)
		<-proceed
	}
	got := make(chan []byte, 1)
	go func() {
		v, err := s.Get(key)
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	<-read
	ft.afterGet = nil
	return func() []byte {
		close(proceed)
		v := <-got
		waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.flights) == 0 })
		return v
	}
}

func TestDeleteDuringMissDoesNotRefill(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("a"), []byte("old"), clock.Now().Unix()+100)
	finish := raceRead(t, s, ft, "a") // read "old", not yet filled
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	wantValue(t, finish(), "old") // the read was concurrent with the Delete
	if inMemory(s, "a") {
		t.Fatal("a read that began before Delete put the old value back into memory")
	}
	wantValue(t, mustGet(t, s, "a"), "")
}

func TestInvalidationDuringMissDoesNotRefill(t *testing.T) {
	for _, op := range []string{"delete", "update"} {
		t.Run(op, func(t *testing.T) {
			s, ft, clock := newTestStore(t, 10)
			h := hashKey("a")
			ft.put(h, []byte("old"), clock.Now().Unix()+100)
			finish := raceRead(t, s, ft, "a")
			// Another instance changes the row, and its notification arrives mid-read.
			if op == "delete" {
				ft.delete(context.Background(), h)
				s.apply("d " + h)
			} else {
				ft.put(h, []byte("new"), clock.Now().Unix()+100)
				s.apply(updatePayload(h, "new", clock.Now().Unix()+100))
			}
			finish()
			if inMemory(s, "a") {
				t.Fatal("a read that began before an invalidation filled memory")
			}
			want := ""
			if op == "update" {
				want = "new"
			}
			wantValue(t, mustGet(t, s, "a"), want)
		})
	}
}

func TestSetDuringMissWins(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("a"), []byte("old"), clock.Now().Unix()+100)
	finish := raceRead(t, s, ft, "a")
	mustSet(t, s, "a", "new", time.Hour)
	finish()
	wantValue(t, mustGet(t, s, "a"), "new")
	if ft.gets.Load() != 1 {
		t.Fatalf("got %d tier reads, want 1: the Set's value should be served from memory", ft.gets.Load())
	}
}

func TestLateSetAfterDeleteIsRefused(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "logged in", time.Hour)
	loaded := mustGet(t, s, "a")          // a request loads the session ...
	if err := s.Delete("a"); err != nil { // ... the user logs out ...
		t.Fatal(err)
	}
	err := s.Set("a", loaded, time.Hour) // ... and the first request saves it.
	if !errors.Is(err, ErrDeleted) {
		t.Fatalf("got %v, want ErrDeleted", err)
	}
	if inMemory(s, "a") {
		t.Fatal("a refused write is in memory")
	}
	if _, ok := ft.rowOK("a"); ok {
		t.Fatal("a refused write is in the tier")
	}
	wantValue(t, mustGet(t, s, "a"), "")
}

func TestConcurrentSetsNeverLeaveMemoryBehindTheTier(t *testing.T) {
	// Set A reaches the tier first but finishes last; Set B overtakes it. Memory must end
	// with what the tier holds, or nothing.
	s, ft, _ := newTestStore(t, 10)
	aWritten := make(chan struct{})
	aGo := make(chan struct{})
	first := true
	ft.afterSet = func(string) {
		if first {
			first = false
			close(aWritten)
			<-aGo
		}
	}
	done := make(chan error)
	go func() { done <- s.Set("k", []byte("A"), time.Hour) }()
	<-aWritten
	mustSet(t, s, "k", "B", time.Hour)
	close(aGo)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tierVal := string(ft.row("k").v)
	wantValue(t, mustGet(t, s, "k"), tierVal)
}

func TestNotificationOfOwnWriteKeepsEntry(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	h := hashKey("a")
	// The notification arrives while the Set is still in flight ...
	ft.afterSet = func(string) { s.apply(updatePayload(h, "1", ft.rows[h].e)) }
	mustSet(t, s, "a", "1", time.Hour)
	// ... and again after it finished (at-least-once is what we assume).
	s.apply(updatePayload(h, "1", clock.Now().Add(time.Hour).Unix()))
	if !inMemory(s, "a") {
		t.Fatal("the notification of this instance's own write evicted its fresh entry")
	}
	// Someone else's write does evict it.
	s.apply(updatePayload(h, "2", clock.Now().Add(time.Hour).Unix()))
	if inMemory(s, "a") {
		t.Fatal("a notification of another value left the entry in memory")
	}
	// So does a shorter expiry for the same value.
	mustSet(t, s, "a", "1", time.Hour)
	s.apply(updatePayload(h, "1", clock.Now().Add(time.Minute).Unix()))
	if inMemory(s, "a") {
		t.Fatal("a notification of a shorter expiry left the entry in memory")
	}
}

func TestNotificationOfOtherWriteDuringSetPreventsFill(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	h := hashKey("a")
	ft.afterSet = func(string) {
		// Another instance overwrites right after our commit; its notification lands before
		// our fill.
		ft.put(h, []byte("theirs"), clock.Now().Unix()+100)
		s.apply(updatePayload(h, "theirs", clock.Now().Unix()+100))
	}
	mustSet(t, s, "a", "ours", time.Hour)
	ft.afterSet = nil
	wantValue(t, mustGet(t, s, "a"), "theirs")
}

func TestBadNotificationFlushes(t *testing.T) {
	s, _, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "1", time.Hour)
	s.apply("garbage")
	if inMemory(s, "a") {
		t.Fatal("an unparsable notification left memory as it was")
	}
}

func TestResetNotificationFlushes(t *testing.T) {
	s, _, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "1", time.Hour)
	s.apply("r")
	if st := s.Stats(); st.Entries != 0 {
		t.Fatalf("got %d entries after 'r', want 0", st.Entries)
	}
}

func TestIncoherentStoreServesFromTierOnly(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "1", time.Hour)
	s.setCoherent(false)
	if st := s.Stats(); st.Entries != 0 || st.Listening {
		t.Fatalf("got %+v after losing the listener, want an empty memory tier", st)
	}
	mustGet(t, s, "a")
	mustGet(t, s, "a")
	if ft.gets.Load() != 2 {
		t.Fatalf("got %d tier reads, want 2: no memory tier while not listening", ft.gets.Load())
	}
	mustSet(t, s, "b", "1", time.Hour)
	if inMemory(s, "b") {
		t.Fatal("a Set filled memory while not listening")
	}
	s.setCoherent(true)
	mustGet(t, s, "a")
	mustGet(t, s, "a")
	if ft.gets.Load() != 3 {
		t.Fatalf("got %d tier reads, want 3: the memory tier should serve again", ft.gets.Load())
	}
}

func TestReadBeforeReconnectDoesNotFill(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("a"), []byte("old"), clock.Now().Unix()+100)
	s.setCoherent(false)
	finish := raceRead(t, s, ft, "a")
	s.setCoherent(true) // listening again; what changed before this was never notified
	finish()
	if inMemory(s, "a") {
		t.Fatal("a read that began while not listening filled memory")
	}
}

func TestCapacityEvictsLeastRecentlyUsed(t *testing.T) {
	s, _, _ := newTestStore(t, 3)
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, k, time.Hour)
	}
	mustGet(t, s, "a") // b is now the least recently used
	mustSet(t, s, "d", "d", time.Hour)
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if inMemory(s, k) != want {
			t.Errorf("%s in memory: got %v, want %v", k, !want, want)
		}
	}
	if st := s.Stats(); st.Evictions != 1 || st.Entries != 3 {
		t.Fatalf("got %+v, want 1 eviction and 3 entries", st)
	}
	assertIndexMatchesMemory(t, s)
}

// assertIndexMatchesMemory checks that the LRU bookkeeping and memory/v2 hold the same keys.
func assertIndexMatchesMemory(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return
	}
	raw, err := s.mem.db.Keys()
	if err != nil {
		t.Fatal(err)
	}
	var inDB, inIndex []string
	for _, k := range raw {
		inDB = append(inDB, string(k))
	}
	for k := range s.mem.index {
		inIndex = append(inIndex, k)
	}
	listed := 0
	for n := s.mem.head.next; n != &s.mem.head; n = n.next {
		listed++
	}
	sort.Strings(inDB)
	sort.Strings(inIndex)
	if fmt.Sprint(inDB) != fmt.Sprint(inIndex) || listed != len(inIndex) {
		t.Fatalf("memory/v2 holds %v, the index %v, the LRU list %d entries", inDB, inIndex, listed)
	}
	if len(inIndex) > s.mem.cap {
		t.Fatalf("got %d entries, capacity %d", len(inIndex), s.mem.cap)
	}
}

func TestCapacityZeroTurnsMemoryOff(t *testing.T) {
	s, ft, _ := newTestStore(t, 0)
	mustSet(t, s, "a", "1", time.Hour)
	wantValue(t, mustGet(t, s, "a"), "1")
	wantValue(t, mustGet(t, s, "a"), "1")
	if ft.gets.Load() != 2 {
		t.Fatalf("got %d tier reads, want 2", ft.gets.Load())
	}
}

func TestResetClearsBothTiers(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "1", time.Hour)
	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	if s.Stats().Entries != 0 || len(ft.rows) != 0 {
		t.Fatal("Reset left entries behind")
	}
	wantValue(t, mustGet(t, s, "a"), "")
	// A request that loaded "a" before the Reset cannot save it back.
	if err := s.Set("a", []byte("1"), time.Hour); !errors.Is(err, ErrDeleted) {
		t.Fatalf("late Set after Reset: got %v, want ErrDeleted", err)
	}
}

func TestEmptyStoredValueIsAbsent(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("a"), []byte{}, clock.Now().Unix()+100) // only psql can write this
	wantValue(t, mustGet(t, s, "a"), "")
	if inMemory(s, "a") {
		t.Fatal("an empty value entered memory (memory/v2 would not hold it)")
	}
	assertIndexMatchesMemory(t, s)
}

func TestGetHonoursDeadlineAndCancellation(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	s.cfg.QueryTimeout = 20 * time.Millisecond
	ft.beforeGet = func(ctx context.Context, _ string) error {
		<-ctx.Done() // a hung database
		return ctx.Err()
	}
	if _, err := s.Get("a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}

	s.cfg.QueryTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.GetWithContext(ctx, "b"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestGetErrorIsReturnedAndNotCached(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("a"), []byte("1"), clock.Now().Unix()+100)
	ft.getErr = errBoom
	if _, err := s.Get("a"); !errors.Is(err, errBoom) {
		t.Fatalf("got %v, want %v", err, errBoom)
	}
	ft.getErr = nil
	wantValue(t, mustGet(t, s, "a"), "1")
}

func TestClosedStoreRefusesCalls(t *testing.T) {
	s, _, _ := newTestStore(t, 10)
	s.cfg.Decode = func(v []byte) (any, error) { return string(v), nil }
	mustSet(t, s, "a", "1", time.Hour)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Get":           func() error { _, err := s.Get("a"); return err },
		"GetDecoded":    func() error { _, _, err := s.GetDecoded(ctx, "a"); return err },
		"Touch":         func() error { return s.Touch(ctx, "a", time.Now().Add(time.Hour)) },
		"Set":           func() error { return s.Set("a", []byte("1"), 0) },
		"Delete":        func() error { return s.Delete("a") },
		"Reset":         func() error { return s.Reset() },
		"DeleteOwner":   func() error { _, err := s.DeleteOwner(ctx, "owner"); return err },
		"Owned":         func() error { _, err := s.Owned(ctx, "owner", "a"); return err },
		"DeleteHandle":  func() error { _, _, err := s.DeleteHandle(ctx, "owner", "h", "a"); return err },
		"SetWithCtx":    func() error { return s.SetWithContext(ctx, "a", []byte("1"), 0) },
		"GetWithCtx":    func() error { _, err := s.GetWithContext(ctx, "a"); return err },
		"DeleteWithCtx": func() error { return s.DeleteWithContext(ctx, "a") },
		"ResetWithCtx":  func() error { return s.ResetWithContext(ctx) },
	} {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestHitHonoursEndedContext(t *testing.T) {
	s, _, _ := newTestStore(t, 10)
	s.cfg.Decode = func(v []byte) (any, error) { return string(v), nil }
	mustSet(t, s, "a", "1", time.Hour)
	if _, _, err := s.GetDecoded(context.Background(), "a"); err != nil { // decoded form cached
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v, err := s.GetWithContext(ctx, "a"); !errors.Is(err, context.Canceled) || v != nil {
		t.Fatalf("GetWithContext on a hit with a cancelled context: got %q, %v; want nil, context.Canceled", v, err)
	}
	if d, _, err := s.GetDecoded(ctx, "a"); !errors.Is(err, context.Canceled) || d != nil {
		t.Fatalf("GetDecoded on a hit with a cancelled context: got %v, %v; want nil, context.Canceled", d, err)
	}
	if !inMemory(s, "a") {
		t.Fatal("a refused call dropped the entry")
	}
}

func TestNeverServedPastRequestedExpiry(t *testing.T) {
	// Whatever the fraction of a second a Set happens at, its value is gone once exp has
	// passed: the row keeps whole seconds, rounded down.
	for _, frac := range []time.Duration{0, 1, 300 * time.Millisecond, 700 * time.Millisecond, time.Second - 1} {
		t.Run(frac.String(), func(t *testing.T) {
			s, ft, clock := newTestStore(t, 10)
			clock.Advance(frac)
			const exp = 500 * time.Millisecond
			mustSet(t, s, "a", "v", exp)
			mustGet(t, s, "a")
			clock.Advance(exp)
			wantValue(t, mustGet(t, s, "a"), "")
			s.flushAll()
			wantValue(t, mustGet(t, s, "a"), "")
			if e := ft.row("a").e; time.Unix(e, 0).After(time.Unix(1_700_000_000, 0).Add(frac + exp)) {
				t.Fatalf("row expires at %d, after the requested expiry", e)
			}
		})
	}
}

func TestTombstonesOffIsAPlainStorage(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("tombstones=%v", on), func(t *testing.T) {
			clock := newFakeClock()
			cfg := DefaultConfig()
			cfg.Tombstones = on
			cfg.Now = clock.Now
			s := newStore(newMapTier(cfg.Now, cfg.Tombstones), nil, cfg, true)
			defer s.Close()
			mustSet(t, s, "a", "1", time.Hour)
			if err := s.Delete("a"); err != nil {
				t.Fatal(err)
			}
			err := s.Set("a", []byte("2"), time.Hour)
			if on != errors.Is(err, ErrDeleted) {
				t.Fatalf("Set after Delete: got %v, want ErrDeleted only with tombstones", err)
			}
			if err := s.Reset(); err != nil {
				t.Fatal(err)
			}
			err = s.Set("a", []byte("3"), time.Hour)
			if on != errors.Is(err, ErrDeleted) {
				t.Fatalf("Set after Reset: got %v, want ErrDeleted only with tombstones", err)
			}
			if !on {
				wantValue(t, mustGet(t, s, "a"), "3")
			}
		})
	}
}

func TestSubSecondSweepIntervalIsHonoured(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	s.Close()
	cfg := s.cfg
	cfg.SweepInterval = 20 * time.Millisecond
	s = newStore(ft, nil, cfg, true)
	defer s.Close()
	ft.put(hashKey("old"), []byte("1"), clock.Now().Unix()+1)
	clock.Advance(2 * time.Second)
	waitFor(t, func() bool { ft.mu.Lock(); defer ft.mu.Unlock(); return len(ft.rows) == 0 })
}

func TestParseChange(t *testing.T) {
	h := hashKey("a")
	d := sha256.Sum256([]byte("v"))
	hexd := hex.EncodeToString(d[:])
	for _, tc := range []struct {
		payload string
		ok      bool
		want    change
	}{
		{"r", true, change{op: 'r'}},
		{"d " + h, true, change{op: 'd', key: h}},
		{"u " + h + " 42 " + hexd, true, change{op: 'u', key: h, e: 42, digest: d}},
		{"u " + h + " 0 " + hexd, true, change{op: 'u', key: h, e: 0, digest: d}},
		{"", false, change{}},
		{"d", false, change{}},
		{"d ", false, change{}},
		{"u " + h + " -1 " + hexd, false, change{}},
		{"u " + h + " x " + hexd, false, change{}},
		{"u " + h + " 1 " + hexd[:10], false, change{}},
		{"u " + h + " 1 " + hexd + "00", false, change{}},
		{"x " + h, false, change{}},
	} {
		t.Run(strconv.Quote(tc.payload), func(t *testing.T) {
			got, err := parseChange(tc.payload)
			if (err == nil) != tc.ok {
				t.Fatalf("got error %v, want ok=%v", err, tc.ok)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// updatePayload is the notification the trigger sends when key's row holds val until e.
func updatePayload(key, val string, e int64) string {
	d := sha256.Sum256([]byte(val))
	return fmt.Sprintf("u %s %d %s", key, e, hex.EncodeToString(d[:]))
}

func TestNotificationDuringMissOfTheRowReadStillFills(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	h := hashKey("a")
	e := clock.Now().Unix() + 100
	ft.put(h, []byte("new"), e)
	finish := raceRead(t, s, ft, "a")   // the read already returned "new" ...
	s.apply(updatePayload(h, "new", e)) // ... and the notification of that write arrives
	wantValue(t, finish(), "new")
	if !inMemory(s, "a") {
		t.Fatal("a read of exactly the notified row was not allowed to fill")
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	// memory/v2 starts one process-wide clock goroutine the first time it is used, which no
	// store can stop; start it before counting.
	warm, _, _ := newTestStore(t, 1)
	warm.Close()

	before := runtime.NumGoroutine()
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.Now = clock.Now
	ft := newFakeTier(clock.Now)
	release := make(chan struct{})
	ft.beforeGet = func(ctx context.Context, _ string) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return ctx.Err()
	}
	s := newStore(ft, nil, cfg, true)
	ctx, cancel := context.WithCancel(context.Background())
	go s.GetWithContext(ctx, "a") // a load left in flight
	waitFor(t, func() bool { return ft.gets.Load() == 1 })
	cancel()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	defer close(release) // only now: a load Close did not cancel would still be blocked
	// Close has returned, so its goroutines are finishing; allow the scheduler to reap them.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("got %d goroutines after Close, want at most %d:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// decodeCounting is a Config.Decode that counts its calls and returns a *string.
func decodeCounting(n *atomic.Int64) func([]byte) (any, error) {
	return func(v []byte) (any, error) {
		n.Add(1)
		if string(v) == "undecodable" {
			return nil, errBoom
		}
		s := string(v)
		return &s, nil
	}
}

func TestGetDecodedDecodesOncePerValue(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	var decodes atomic.Int64
	s.cfg.Decode = decodeCounting(&decodes)
	ctx := context.Background()
	mustSet(t, s, "a", "v1", time.Hour)

	first, _, err := s.GetDecoded(ctx, "a")
	if err != nil || *first.(*string) != "v1" {
		t.Fatalf("got %v, %v; want v1", first, err)
	}
	for range 10 {
		got, _, err := s.GetDecoded(ctx, "a")
		if err != nil || got != first {
			t.Fatalf("got %v, %v; want the same decoded value as before", got, err)
		}
	}
	if decodes.Load() != 1 || ft.gets.Load() != 0 {
		t.Fatalf("got %d decodes and %d tier reads for 11 calls, want 1 and 0", decodes.Load(), ft.gets.Load())
	}

	mustSet(t, s, "a", "v2", time.Hour) // a new value is decoded anew
	if got, _, _ := s.GetDecoded(ctx, "a"); *got.(*string) != "v2" {
		t.Fatalf("got %q, want v2", *got.(*string))
	}
	s.apply(updatePayload(hashKey("a"), "v3", clock.Now().Unix()+100)) // another instance wrote
	ft.put(hashKey("a"), []byte("v3"), clock.Now().Unix()+100)
	if got, _, _ := s.GetDecoded(ctx, "a"); *got.(*string) != "v3" {
		t.Fatalf("got %q after an invalidation, want v3", *got.(*string))
	}
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.GetDecoded(ctx, "a"); got != nil || err != nil {
		t.Fatalf("got %v, %v after Delete; want nil, nil", got, err)
	}
}

// TestCachedAnswersFromMemoryOnly: Cached gives what GetDecoded gives when memory serves the key
// with its decoded form, counted as a hit, and otherwise reports false without reading the tier,
// decoding or counting anything.
func TestCachedAnswersFromMemoryOnly(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	var decodes atomic.Int64
	s.cfg.Decode = decodeCounting(&decodes)
	ctx := context.Background()
	// notCached fails unless Cached(key) reports false and leaves the tier and the counters alone.
	notCached := func(what, key string) {
		t.Helper()
		before, gets, n := s.Stats(), ft.gets.Load(), decodes.Load()
		if d, exp, ok := s.Cached(key); ok || d != nil || !exp.IsZero() {
			t.Errorf("%s: Cached = %v, %v, %v; want nil, zero, false", what, d, exp, ok)
		}
		if after := s.Stats(); after.Hits != before.Hits || after.Misses != before.Misses || ft.gets.Load() != gets || decodes.Load() != n {
			t.Errorf("%s: Cached counted %d hits and %d misses, read the tier %d times and decoded %d times; want none",
				what, after.Hits-before.Hits, after.Misses-before.Misses, ft.gets.Load()-gets, decodes.Load()-n)
		}
	}
	notCached("empty key", "")
	notCached("absent key", "a")
	ft.put(hashKey("a"), []byte("v1"), clock.Now().Add(time.Hour).Unix()) // written by another instance
	notCached("key only in the tier", "a")
	mustSet(t, s, "a", "v1", time.Hour)
	notCached("key in memory, not decoded yet", "a")

	want, wantExp, err := s.GetDecoded(ctx, "a")
	if err != nil || want == nil {
		t.Fatalf("GetDecoded: %v, %v", want, err)
	}
	hits := s.Stats().Hits
	for range 3 {
		d, exp, ok := s.Cached("a")
		if !ok || d != want || !exp.Equal(wantExp) {
			t.Fatalf("Cached = %v, %v, %v; want GetDecoded's %v, %v, true", d, exp, ok, want, wantExp)
		}
	}
	if got := s.Stats().Hits - hits; got != 3 || ft.gets.Load() != 0 || decodes.Load() != 1 {
		t.Errorf("3 Cached hits: counted %d hits, %d tier reads, %d decodes; want 3, 0, 1", got, ft.gets.Load(), decodes.Load())
	}

	s.mu.Lock()
	s.leased, s.leaseOK = true, false // the lease ran out: memory keeps its entries, serves none
	s.mu.Unlock()
	notCached("memory not serving", "a")
	s.mu.Lock()
	s.leaseOK = true
	s.mu.Unlock()
	if _, _, ok := s.Cached("a"); !ok {
		t.Fatal("Cached after the lease came back: not ok")
	}

	mustSet(t, s, "a", "v2", time.Hour)
	notCached("key rewritten, its new value not decoded yet", "a")
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	notCached("deleted key", "a")

	mustSet(t, s, "b", "v1", time.Minute)
	if _, _, err := s.GetDecoded(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	notCached("expired key", "b")

	mustSet(t, s, "c", "v1", time.Hour)
	if _, _, err := s.GetDecoded(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d, _, ok := s.Cached("c"); ok || d != nil {
		t.Errorf("Cached after Close = %v, %v; want nil, false", d, ok)
	}
}

func TestGetDecodedErrors(t *testing.T) {
	s, _, _ := newTestStore(t, 10)
	if _, _, err := s.GetDecoded(context.Background(), "a"); err == nil {
		t.Fatal("GetDecoded without Config.Decode succeeded")
	}
	var decodes atomic.Int64
	s.cfg.Decode = decodeCounting(&decodes)
	mustSet(t, s, "bad", "undecodable", time.Hour)
	for range 2 {
		if _, _, err := s.GetDecoded(context.Background(), "bad"); !errors.Is(err, errBoom) {
			t.Fatalf("got %v, want %v", err, errBoom)
		}
	}
	if decodes.Load() != 2 {
		t.Fatalf("got %d decodes, want 2: a failed decode must not be kept", decodes.Load())
	}
}

// setHook installs f as the store's test hook.
func (s *Store) setHook(f func(point, key string)) { s.hook.Store(&f) }

// contextStorage is gofiber/storage's Storage interface, the one Fiber v3's middleware takes:
// the Store must satisfy it as well as Fiber v2's fiber.Storage.
type contextStorage interface {
	GetWithContext(ctx context.Context, key string) ([]byte, error)
	Get(key string) ([]byte, error)
	SetWithContext(ctx context.Context, key string, val []byte, exp time.Duration) error
	Set(key string, val []byte, exp time.Duration) error
	DeleteWithContext(ctx context.Context, key string) error
	Delete(key string) error
	ResetWithContext(ctx context.Context) error
	Reset() error
	Close() error
}

var _ contextStorage = (*Store)(nil)

func TestLateNotificationAfterLocalWriteDoesNotRefill(t *testing.T) {
	// A read in flight; then a local Delete (a logout) or Set; then the late notification of an
	// earlier write by another instance; then the read finishes. It must not put the old row
	// back: Get after the logout returned must not see the session.
	for _, op := range []string{"delete", "set"} {
		t.Run(op, func(t *testing.T) {
			s, ft, clock := newTestStore(t, 10)
			h := hashKey("a")
			e := clock.Now().Unix() + 100
			ft.put(h, []byte("old"), e) // written by another instance; notification not yet here
			finish := raceRead(t, s, ft, "a")
			want := ""
			if op == "delete" {
				if err := s.Delete("a"); err != nil {
					t.Fatal(err)
				}
			} else {
				mustSet(t, s, "a", "new", time.Hour)
				want = "new"
			}
			s.apply(updatePayload(h, "old", e)) // the late notification
			finish()
			wantValue(t, mustGet(t, s, "a"), want)
		})
	}
}

// flushAll empties the memory tier, as a listener loss would.
func (s *Store) flushAll() {
	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
}

func TestMemoryKeepsItsOwnCopyOfTheKey(t *testing.T) {
	// Fiber hands keys that point into buffers it reuses after the request.
	s, ft, _ := newTestStore(t, 10)
	buf := []byte("session-a")
	key := unsafe.String(&buf[0], len(buf))
	mustSet(t, s, key, "1", time.Hour)
	copy(buf, "session-b") // the buffer now serves another request
	wantValue(t, mustGet(t, s, "session-a"), "1")
	if n := ft.gets.Load(); n != 0 {
		t.Fatalf("got %d tier reads, want 0: the entry was lost when the caller's buffer changed", n)
	}
	wantValue(t, mustGet(t, s, "session-b"), "")
	assertIndexMatchesMemory(t, s)
}

// TestTouch moves an expiry later and changes nothing else: the value, the decoded form kept
// with it, and a key without expiry stay; a missing, deleted or expired key is not brought back.
func TestTouch(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	var decodes atomic.Int64
	s.cfg.Decode = decodeCounting(&decodes)
	ctx := context.Background()
	mustSet(t, s, "a", "v1", time.Minute)
	first, exp, err := s.GetDecoded(ctx, "a")
	if err != nil || *first.(*string) != "v1" || exp.Unix() != clock.Now().Add(time.Minute).Unix() {
		t.Fatalf("GetDecoded: got %v, %v, %v; want v1 expiring in a minute", first, exp, err)
	}

	if err := s.Touch(ctx, "a", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := clock.Now().Add(time.Hour).Unix()
	if r := ft.row("a"); r.e != want || string(r.v) != "v1" {
		t.Fatalf("row after Touch: %q expiring at %d, want v1 at %d", r.v, r.e, want)
	}
	got, exp, err := s.GetDecoded(ctx, "a")
	if err != nil || got != first || exp.Unix() != want {
		t.Fatalf("GetDecoded after Touch: got %v (first %v), %v, %v; want the same decoded value expiring at %d", got, first, exp, err, want)
	}
	if decodes.Load() != 1 || ft.gets.Load() != 0 {
		t.Fatalf("got %d decodes and %d tier reads, want 1 and 0: a touch keeps the entry and its decoded form", decodes.Load(), ft.gets.Load())
	}

	// Never earlier.
	if err := s.Touch(ctx, "a", clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r := ft.row("a"); r.e != want {
		t.Fatalf("a shorter Touch moved the expiry to %d, want it left at %d", r.e, want)
	}
	// A key without expiry keeps none.
	mustSet(t, s, "forever", "v", 0)
	if err := s.Touch(ctx, "forever", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := ft.row("forever"); r.e != 0 {
		t.Fatalf("Touch gave a key without expiry the expiry %d", r.e)
	}

	// Nothing is brought back.
	mustSet(t, s, "gone", "v", time.Hour)
	if err := s.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "old", "v", time.Second)
	clock.Advance(2 * time.Second)
	for _, k := range []string{"never", "gone", "old", ""} {
		if err := s.Touch(ctx, k, clock.Now().Add(time.Hour)); !errors.Is(err, ErrDeleted) {
			t.Errorf("Touch(%q): got %v, want ErrDeleted", k, err)
		}
		if k != "" {
			if r, ok := ft.rowOK(k); ok && !expired(r.e, clock.Now()) {
				t.Errorf("Touch(%q) brought the key back", k)
			}
		}
	}
	for _, past := range []time.Time{{}, clock.Now(), clock.Now().Add(-time.Hour)} {
		if err := s.Touch(ctx, "a", past); err == nil {
			t.Errorf("Touch to %v succeeded, want an error: not in the future", past)
		}
	}
}

// TestTouchDuringReadKeepsNewerExpiry: a read that began before a Touch and returns after it must
// not put the row it read, with its older expiry, over what the Touch filled.
func TestTouchDuringReadKeepsNewerExpiry(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("a"), []byte("v"), clock.Now().Unix()+60)
	reached, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ft.afterGet = func(string) { once.Do(func() { close(reached); <-proceed }) }
	done := make(chan error, 1)
	go func() { _, err := s.Get("a"); done <- err }()
	<-reached // the read holds the row expiring in a minute
	if err := s.Touch(context.Background(), "a", clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	close(proceed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	n, ok := s.mem.lookup(hashKey("a"))
	s.mu.Unlock()
	if !ok || n.rowExpiry != clock.Now().Unix()+3600 {
		t.Fatalf("memory after the read: %+v, %v; want the touched row, expiring in an hour", n, ok)
	}
}

// TestSetWithOwner: with Config.Owner, Set decodes the value once, writes the owner with it, and
// the decoded form is the one GetDecoded returns; a value Decode refuses is not written.
func TestSetWithOwner(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	var decodes atomic.Int64
	s.cfg.Decode = decodeCounting(&decodes)
	var owners []string
	s.cfg.Owner = func(d any) string {
		owners = append(owners, "owner of "+*d.(*string))
		return owners[len(owners)-1]
	}
	ctx := context.Background()
	mustSet(t, s, "a", "v1", time.Hour)
	if got, _, err := s.GetDecoded(ctx, "a"); err != nil || *got.(*string) != "v1" {
		t.Fatalf("GetDecoded: got %v, %v; want v1", got, err)
	}
	if decodes.Load() != 1 || ft.gets.Load() != 0 || len(owners) != 1 || owners[0] != "owner of v1" {
		t.Fatalf("got %d decodes, %d reads and owners %q; want 1, 0 and [owner of v1]", decodes.Load(), ft.gets.Load(), owners)
	}
	if err := s.Set("a", []byte("undecodable"), time.Hour); !errors.Is(err, errBoom) {
		t.Fatalf("Set of an undecodable value: got %v, want %v", err, errBoom)
	}
	if r := ft.row("a"); string(r.v) != "v1" || ft.sets.Load() != 1 {
		t.Fatalf("an undecodable value reached the tier: row %q, %d writes", r.v, ft.sets.Load())
	}
}

func TestConfigOwnerNeedsDecode(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Owner = func(any) string { return "" }
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "Owner needs Decode") {
		t.Fatalf("validate: got %v, want an error naming Owner and Decode", err)
	}
}

// pausedLoad makes the next read of the tier stop before it reads the row, and returns a channel
// closed once it has stopped and a function that lets it go on.
func pausedLoad(ft *fakeTier) (reached <-chan struct{}, release func()) {
	r, rel := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ft.beforeGet = func(context.Context, string) error {
		once.Do(func() { close(r); <-rel })
		return nil
	}
	return r, func() { close(rel) }
}

// waitIdle waits until no operation is in flight on any key.
func waitIdle(t *testing.T, s *Store) {
	t.Helper()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.flights) == 0 })
}

// TestReadOutlivingItsCallerKeepsTheCallersKey: a Get whose context ends while its read is in
// flight returns at once; the read goes on and fills memory afterwards, when Fiber has already
// reused the key's buffer for another request. The entry must be filed under the key that was
// read, not under whatever the buffer holds by then.
func TestReadOutlivingItsCallerKeepsTheCallersKey(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("session-A"), []byte("A's value"), clock.Now().Unix()+100)
	reached, release := pausedLoad(ft)
	buf := []byte("session-A")
	key := unsafe.String(&buf[0], len(buf)) // as Fiber hands it: pointing into its buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := s.GetWithContext(ctx, key); done <- err }()
	<-reached
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get whose context ended mid-read: got %v, want context.Canceled", err)
	}
	copy(buf, "session-B") // the buffer now serves the next request
	release()
	waitIdle(t, s)
	wantValue(t, mustGet(t, s, "session-B"), "")
	wantValue(t, mustGet(t, s, "session-A"), "A's value")
	assertIndexMatchesMemory(t, s)
}

// TestMissAfterAFinishedReadChecksMemoryAgain: a Get that found nothing in memory and reaches the
// read after another Get's read has filled memory takes the value from memory, not from a second
// read.
func TestMissAfterAFinishedReadChecksMemoryAgain(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	ft.put(hashKey("a"), []byte("v"), clock.Now().Unix()+100)
	missed, proceed := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	s.setHook(func(point, _ string) {
		if point == "miss" && first.CompareAndSwap(false, true) {
			close(missed)
			<-proceed
		}
	})
	got := make(chan []byte, 1)
	go func() { v, _ := s.Get("a"); got <- v }()
	<-missed                              // the first Get missed memory and stands before its read
	wantValue(t, mustGet(t, s, "a"), "v") // a second Get reads and fills memory
	close(proceed)
	wantValue(t, <-got, "v")
	if n := ft.gets.Load(); n != 1 {
		t.Fatalf("got %d tier reads, want 1: the first Get should have found the value in memory", n)
	}
}

// stampede starts n Gets of key, waits until every one has joined the read in flight, and
// returns a function that waits for them and returns their values.
func stampede(t *testing.T, s *Store, key string, n int) (wait func() []string) {
	t.Helper()
	misses := s.Stats().Misses
	got := make(chan string, n)
	for range n {
		go func() {
			v, err := s.Get(key)
			if err != nil {
				t.Error(err)
			}
			got <- string(v)
		}()
	}
	waitFor(t, func() bool { return s.Stats().Misses == misses+uint64(n) })
	return func() []string {
		var vals []string
		for range n {
			vals = append(vals, <-got)
		}
		return vals
	}
}

// TestNotificationOfTheRowDuringAStampedeIsOneRead: the notification of the very row a read
// returns, arriving while the read is in flight, must not make later Gets start a read of their
// own: they join the one in flight and take its value.
func TestNotificationOfTheRowDuringAStampedeIsOneRead(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	h, e := hashKey("a"), clock.Now().Unix()+100
	ft.put(h, []byte("v"), e)
	reached, release := pausedLoad(ft)
	first := stampede(t, s, "a", 50)
	<-reached
	s.apply(updatePayload(h, "v", e)) // the write's notification arrives mid-read
	second := stampede(t, s, "a", 50)
	release()
	for _, v := range append(first(), second()...) {
		if v != "v" {
			t.Fatalf("got %q, want %q", v, "v")
		}
	}
	if n := ft.gets.Load(); n != 1 {
		t.Fatalf("got %d tier reads for 100 concurrent Gets, want 1", n)
	}
	if !inMemory(s, "a") {
		t.Fatal("the read of the notified row did not fill memory")
	}
}

// TestNotificationOfAnotherRowDuringAStampedeIsSeen: Gets that start after the notification of
// a newer row must return it, even when a read that began before it is still in flight and
// returns the older one.
func TestNotificationOfAnotherRowDuringAStampedeIsSeen(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	h, e := hashKey("a"), clock.Now().Unix()+100
	ft.put(h, []byte("old"), e)
	read, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ft.afterGet = func(string) { once.Do(func() { close(read); <-proceed }) }
	first := stampede(t, s, "a", 20)
	<-read // the read holds "old"
	ft.put(h, []byte("new"), e)
	s.apply(updatePayload(h, "new", e))
	second := stampede(t, s, "a", 20)
	close(proceed)
	for _, v := range first() {
		if v != "old" && v != "new" {
			t.Fatalf("a Get concurrent with the write got %q, want old or new", v)
		}
	}
	for _, v := range second() {
		if v != "new" {
			t.Fatalf("a Get that began after the notification got %q, want new", v)
		}
	}
	wantValue(t, mustGet(t, s, "a"), "new")
}

// TestClosedStoreRefusesEveryCall: after Close, every call returns ErrClosed, including those
// whose input would otherwise be ignored or refused.
func TestClosedStoreRefusesEveryCall(t *testing.T) {
	s, _, clock := newTestStore(t, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Get empty key", func() error { _, err := s.Get(""); return err }},
		{"GetWithContext ended context", func() error { _, err := s.GetWithContext(ended, "a"); return err }},
		{"GetDecoded without Decode", func() error { _, _, err := s.GetDecoded(ctx, "a"); return err }},
		{"Set empty key", func() error { return s.Set("", []byte("v"), 0) }},
		{"Set nil value", func() error { return s.Set("a", nil, 0) }},
		{"Set negative expiry", func() error { return s.Set("a", []byte("v"), -time.Second) }},
		{"SetWithContext ended context", func() error { return s.SetWithContext(ended, "", nil, 0) }},
		{"Delete empty key", func() error { return s.Delete("") }},
		{"Touch empty key", func() error { return s.Touch(ctx, "", clock.Now().Add(time.Hour)) }},
		{"Touch past expiry", func() error { return s.Touch(ctx, "a", clock.Now().Add(-time.Hour)) }},
		{"Touch ended context", func() error { return s.Touch(ended, "a", clock.Now().Add(time.Hour)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		})
	}
	s.cfg.Decode = func([]byte) (any, error) { return nil, errBoom }
	s.cfg.Owner = func(any) string { return "" }
	if _, _, err := s.GetDecoded(ctx, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("GetDecoded empty key: got %v, want ErrClosed", err)
	}
	if err := s.Set("a", []byte("undecodable"), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Set of a value Decode refuses: got %v, want ErrClosed", err)
	}
}
