package storage

import (
	"context"
	"sync"
	"time"
)

// NewInMemory returns a Store whose source of truth is a map in this process: nothing persists,
// nothing is shared with other instances, and the owner statements (DeleteOwner, Owned) are unavailable. It runs the
// very same memory tier and read path as New, which makes it the upper bound that bench/ holds
// the Postgres-backed store against; it also serves tests that need a store without a database.
// With Config.Tombstones, deleted keys keep a tombstone until they would have expired, as in
// Postgres.
func NewInMemory(cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newStore(newMapTier(cfg.Now, cfg.Tombstones), nil, cfg, true), nil
}

// mapTier is a tier held in a map, with the semantics of the sessions table and its triggers:
// expiries in whole unix seconds, and (if tombstones) tombstones that refuse writes to a
// deleted key.
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
	if te, ok := t.tombs[key]; ok && te > t.now().Unix() {
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

// deleteLocked deletes key's row and leaves a tombstone until it would have expired, as the
// sessions_tombstone trigger does. t.mu must be held.
func (t *mapTier) deleteLocked(key string) {
	r, ok := t.rows[key]
	if !ok {
		return
	}
	delete(t.rows, key)
	if !t.tombstones {
		return
	}
	now := t.now().Unix()
	switch {
	case r.e == 0:
		t.tombs[key] = now + 7*86400
	case r.e > now:
		t.tombs[key] = r.e
	}
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
