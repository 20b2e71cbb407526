package storage

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// fakeTier stands in for Postgres in unit tests: rows with expiries in unix seconds, tombstones
// that refuse writes to deleted keys (as the migration's trigger does), injectable errors, and
// hooks that let a test stop a call half-way to force an interleaving.
type fakeTier struct {
	mu     sync.Mutex
	now    func() time.Time
	rows   map[string]fakeRow
	tombs  map[string]int64
	getErr error
	setErr error
	// beforeGet, if set, runs inside get before the row is read; afterGet after it is read
	// and before it is returned. They may block.
	beforeGet func(ctx context.Context, key string) error
	afterGet  func(key string)
	afterSet  func(key string)
	gets      atomic.Int64
	sets      atomic.Int64
}

type fakeRow struct {
	v []byte
	e int64
}

func newFakeTier(now func() time.Time) *fakeTier {
	return &fakeTier{now: now, rows: map[string]fakeRow{}, tombs: map[string]int64{}}
}

func (t *fakeTier) get(ctx context.Context, key string) ([]byte, int64, error) {
	t.gets.Add(1)
	if t.beforeGet != nil {
		if err := t.beforeGet(ctx, key); err != nil {
			return nil, 0, err
		}
	}
	t.mu.Lock()
	r, ok := t.rows[key]
	err := t.getErr
	t.mu.Unlock()
	if t.afterGet != nil {
		t.afterGet(key)
	}
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, nil
	}
	return append([]byte(nil), r.v...), r.e, nil
}

func (t *fakeTier) set(ctx context.Context, key string, val []byte, exp time.Duration) error {
	t.sets.Add(1)
	t.mu.Lock()
	if t.setErr != nil {
		err := t.setErr
		t.mu.Unlock()
		return err
	}
	now := t.now()
	if e, ok := t.tombs[key]; ok && e > now.Unix() {
		t.mu.Unlock()
		return ErrDeleted
	}
	t.rows[key] = fakeRow{v: append([]byte(nil), val...), e: rowExpiry(now, exp)}
	t.mu.Unlock()
	if t.afterSet != nil {
		t.afterSet(key)
	}
	return ctx.Err()
}

func (t *fakeTier) delete(_ context.Context, key string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleteLocked(key)
	return nil
}

func (t *fakeTier) deleteLocked(key string) {
	r, ok := t.rows[key]
	if !ok {
		return
	}
	delete(t.rows, key)
	now := t.now().Unix()
	if r.e == 0 {
		t.tombs[key] = now + 7*86400
	} else if r.e > now {
		t.tombs[key] = r.e
	}
}

func (t *fakeTier) reset(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.rows)
	return nil
}

func (t *fakeTier) close() error { return nil }

// put writes a row directly, as another instance or an operator would.
func (t *fakeTier) put(key string, val []byte, e int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows[key] = fakeRow{v: append([]byte(nil), val...), e: e}
}

var errBoom = errors.New("boom")

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
