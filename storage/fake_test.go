package storage

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber-template/sessions/internal/testclock"
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

// mapTier is a tier held in a map, with the semantics of the sessions table and its triggers:
// expiries in whole unix seconds, and (if tombstones) tombstones that refuse writes to a
// deleted key until the sweep after the row's expiry removes them.
type mapTier struct {
	mu         sync.Mutex
	now        func() time.Time
	tombstones bool
	rows       map[string]mapRow
	tombs      map[string]int64
}

type mapRow struct {
	v []byte
	e int64
}

func newMapTier(now func() time.Time, tombstones bool) *mapTier {
	return &mapTier{now: now, tombstones: tombstones, rows: map[string]mapRow{}, tombs: map[string]int64{}}
}

func (t *mapTier) get(_ context.Context, key string) ([]byte, int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rows[key]
	if !ok {
		return nil, 0, nil
	}
	return append([]byte(nil), r.v...), r.e, nil
}

// set ignores owner: the owner statements need Postgres.
func (t *mapTier) set(_ context.Context, key string, val []byte, e int64, _ string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.tombs[key]; ok { // until the sweep removes it
		return ErrDeleted
	}
	t.rows[key] = mapRow{v: append([]byte(nil), val...), e: e}
	return nil
}

func (t *mapTier) touch(_ context.Context, key string, e, now int64) ([]byte, int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.rows[key]
	if !ok || (r.e != 0 && r.e <= now) {
		return nil, 0, ErrDeleted
	}
	if r.e != 0 && e > r.e {
		r.e = e
		t.rows[key] = r
	}
	return append([]byte(nil), r.v...), r.e, nil
}

func (t *mapTier) delete(_ context.Context, key string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleteLocked(key)
	return nil
}

// deleteLocked deletes key's row and leaves a tombstone until the sweep after the row would have
// expired, as the sessions_tombstone trigger does. t.mu must be held.
func (t *mapTier) deleteLocked(key string) {
	r, ok := t.rows[key]
	if !ok {
		return
	}
	delete(t.rows, key)
	if !t.tombstones {
		return
	}
	e := r.e
	if e == 0 {
		e = t.now().Unix() + 7*86400
	}
	t.tombs[key] = max(t.tombs[key], e)
}

func (t *mapTier) reset(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.rows {
		t.deleteLocked(k)
	}
	return nil
}

func (t *mapTier) sweep(_ context.Context, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, r := range t.rows {
		if expired(r.e, now) {
			delete(t.rows, k)
		}
	}
	for k, e := range t.tombs {
		if e <= now.Unix() {
			delete(t.tombs, k)
		}
	}
	return nil
}

// put writes a row directly, bypassing tombstones, as an operator's UPDATE would.
func (t *mapTier) put(key string, val []byte, e int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows[key] = mapRow{v: append([]byte(nil), val...), e: e}
}

var errBoom = errors.New("boom")

// newFakeClock returns a clock a test moves by hand.
func newFakeClock() *testclock.Clock { return testclock.New(time.Unix(1_700_000_000, 0)) }
