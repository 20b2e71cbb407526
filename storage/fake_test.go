package storage

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// fakeTier stands in for Postgres in unit tests: the semantics of mapTier (rows with expiries in
// unix seconds, tombstones that refuse writes to deleted keys, as the migration's trigger does),
// plus injectable errors and hooks that stop a call half-way to force an interleaving.
type fakeTier struct {
	*mapTier
	getErr error
	setErr error
	// beforeGet, if set, runs inside get before the row is read; afterGet after it is read
	// and before it is returned; afterSet after the row is written. They may block.
	beforeGet func(ctx context.Context, key string) error
	afterGet  func(key string)
	afterSet  func(key string)
	gets      atomic.Int64
	sets      atomic.Int64
}

func newFakeTier(now func() time.Time) *fakeTier {
	return &fakeTier{mapTier: newMapTier(now, true)}
}

func (t *fakeTier) get(ctx context.Context, key string) ([]byte, int64, error) {
	t.gets.Add(1)
	if t.beforeGet != nil {
		if err := t.beforeGet(ctx, key); err != nil {
			return nil, 0, err
		}
	}
	v, e, err := t.mapTier.get(ctx, key)
	if t.afterGet != nil {
		t.afterGet(key)
	}
	if t.getErr != nil {
		return nil, 0, t.getErr
	}
	return v, e, err
}

func (t *fakeTier) set(ctx context.Context, key string, val []byte, e int64, owner string) error {
	t.sets.Add(1)
	if t.setErr != nil {
		return t.setErr
	}
	if err := t.mapTier.set(ctx, key, val, e, owner); err != nil {
		return err
	}
	if t.afterSet != nil {
		t.afterSet(key)
	}
	return ctx.Err() // a deadline that strikes after the commit
}

// row returns the row of the caller's key (as the store hashes it); the zero row if none.
func (t *fakeTier) row(key string) mapRow {
	r, _ := t.rowOK(key)
	return r
}

// rowOK returns the row of the caller's key and whether there is one.
func (t *fakeTier) rowOK(key string) (mapRow, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rows[hashKey(key)]
	return r, ok
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
