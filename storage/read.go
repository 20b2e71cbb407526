package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Get returns the value of key, or nil when it does not exist or has expired.
func (s *Store) Get(key string) ([]byte, error) {
	return s.GetWithContext(context.Background(), key)
}

// GetWithContext is Get with the caller's deadline and cancellation: a context already ended
// returns its error, on a memory hit as on a miss. Concurrent misses for one key share a single
// Postgres read; a caller whose context ends stops waiting for it.
func (s *Store) GetWithContext(ctx context.Context, key string) ([]byte, error) {
	val, _, err := s.get(ctx, key)
	return val, err
}

// get is GetWithContext that also returns the row's expiry in unix seconds (0: none).
func (s *Store) get(ctx context.Context, key string) ([]byte, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, s.refuse(err)
	}
	if key == "" {
		return nil, 0, s.refuse(nil)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, 0, ErrClosed
	}
	if v, e, ok := s.cachedLocked(key, s.cfg.Now()); ok {
		s.mu.Unlock()
		s.stats.hits.Add(1)
		return v, e, nil
	}
	s.mu.Unlock()
	return s.miss(ctx, key)
}

// cachedLocked answers the caller's key from memory if memory may serve and knows it: a copy of
// its value with the row's expiry, or nil for a key remembered as dead.
func (s *Store) cachedLocked(key string, now time.Time) (val []byte, e int64, ok bool) {
	if s.mem == nil || !s.servingLocked() {
		return nil, 0, false
	}
	if v, e, ok := s.mem.get(key, now); ok {
		return v, e, true
	}
	return nil, 0, s.mem.dead.has(key, now)
}

// GetDecoded returns Config.Decode of key's value and the expiry of its row (the zero Time for
// none), or nil when the key does not exist or has expired. The decoded form lives with the
// memory entry: a warm key is decoded once per value, not once per call, and a hit copies,
// hashes and allocates nothing. The expiry is the row's as this instance last read or wrote
// it, never later than the row's: another instance may have moved it later since (a Touch, or
// a write of the same value), which leaves this copy alone. Without Config.Decode it returns
// an error; a context already ended returns its error.
func (s *Store) GetDecoded(ctx context.Context, key string) (any, time.Time, error) {
	if s.cfg.Decode == nil {
		return nil, time.Time{}, s.refuse(errors.New("storage: GetDecoded needs Config.Decode"))
	}
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, s.refuse(err)
	}
	if key == "" {
		return nil, time.Time{}, s.refuse(nil)
	}
	if d, expires, ok := s.Cached(key); ok {
		return d, expires, nil
	}
	val, e, err := s.get(ctx, key) // ErrClosed if closed
	if err != nil || val == nil {
		return nil, time.Time{}, err
	}
	d, err := s.cfg.Decode(val)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("storage: decode: %w", err)
	}
	// Keep it with the entry only if the entry still holds exactly these bytes.
	digest := sha256.Sum256(val)
	s.mu.Lock()
	if s.mem != nil {
		if n, ok := s.mem.byKey[key]; ok && n.digest == digest {
			n.decoded = d
		}
	}
	s.mu.Unlock()
	return d, unixTime(e), nil
}

// Cached is GetDecoded answered by memory alone: when memory serves key and holds its decoded
// form, it returns what GetDecoded would (the decoded form and the row's expiry) with ok, and
// counts a hit; otherwise it returns ok false and counts nothing. It never sends a statement,
// never decodes, and allocates nothing: an absent or expired key, one not decoded yet, memory
// off or not serving (the listener not listening), a closed store, all give ok false. Unlike
// GetDecoded it takes no context, so it answers whether or not the caller's has ended.
func (s *Store) Cached(key string) (decoded any, expires time.Time, ok bool) {
	now := s.cfg.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, time.Time{}, false
	}
	d, e, ok := s.decodedLocked(key, now)
	s.mu.Unlock()
	if !ok {
		return nil, time.Time{}, false
	}
	s.stats.hits.Add(1)
	return d, unixTime(e), true
}

// decodedLocked returns the decoded form of the caller's key and its row's expiry if memory
// may serve, holds the key at now and has its decoded form, and marks it most recently used.
func (s *Store) decodedLocked(key string, now time.Time) (decoded any, e int64, ok bool) {
	if s.mem == nil || !s.servingLocked() {
		return nil, 0, false
	}
	if n, ok := s.mem.touch(key, now); ok && n.decoded != nil {
		return n.decoded, n.rowExpiry, true
	}
	return nil, 0, false
}

// unixTime is the time of an expiry in unix seconds, the zero Time for 0 (none).
func unixTime(e int64) time.Time {
	if e == 0 {
		return time.Time{}
	}
	return time.Unix(e, 0)
}

// miss reads key from Postgres, joining the read already in flight for it if there is one, and
// checking memory once more first: a read may have filled it since get looked.
//
// A Get waits for the first read in flight that can answer it: one that began after everything
// this Get could have heard of the key, or one that returns the row the notifications heard
// since the read began announce (a notification detaches no read; any other event does, see
// bumpLocked). Otherwise it reads again, once: a read that begins after it joined always
// answers.
func (s *Store) miss(ctx context.Context, key string) ([]byte, int64, error) {
	h := hashKey(key)
	s.callHook("miss", h)
	var (
		joined bool
		need   uint64    // the key's gen when this Get first joined a read
		want   *rowState // the row announced then since that read began; nil: none
	)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, 0, ErrClosed
		}
		if v, e, ok := s.cachedLocked(key, s.cfg.Now()); ok {
			s.mu.Unlock()
			s.stats.hits.Add(1)
			return v, e, nil
		}
		if !joined {
			s.stats.misses.Add(1)
		}
		f := s.acquireLocked(h)
		ld := f.load
		if ld == nil {
			ld = &load{done: make(chan struct{}), since: f.gen}
			f.load = ld
			f.refs++ // the loader's own reference
			s.wg.Add(1)
			// The caller's key may point into a buffer Fiber reuses once the caller has gone;
			// the loader outlives it when the caller's context ends first.
			go s.loadKey(context.WithoutCancel(ctx), strings.Clone(key), h, f, ld, s.epoch)
		}
		switch {
		case !joined:
			joined, need = true, f.gen
			if ld.since != f.gen {
				want = f.announced
			}
		case ld.since >= need: // began after this Get first joined: always answers
			want = nil
		}
		s.mu.Unlock()

		select {
		case <-ld.done:
		case <-ctx.Done():
			s.release(h, f)
			return nil, 0, ctx.Err()
		}
		s.release(h, f)
		if ld.err != nil {
			return nil, 0, ld.err
		}
		if want != nil && (ld.val == nil || ld.row.digest != want.digest) {
			continue // the read began before a newer row was announced
		}
		if ld.val == nil {
			return nil, 0, nil
		}
		return append([]byte(nil), ld.val...), ld.row.e, nil
	}
}

// loadKey reads key from Postgres for every Get waiting on ld, and fills memory with the row, or
// the dead set with its absence, if the fill rule (mayFillLocked) allows it.
func (s *Store) loadKey(parent context.Context, key, h string, f *flight, ld *load, epoch uint64) {
	defer s.wg.Done()
	ctx, cancel := s.callContext(parent)
	defer cancel()

	s.callHook("load:before", h)
	val, e, err := s.tier.get(ctx, h)
	s.stats.reads.Add(1)
	s.callHook("load:after", h)
	now := s.cfg.Now()
	if err == nil && (expired(e, now) || len(val) == 0) {
		val = nil // an empty value can only come from outside the store; Fiber treats it as absent
	}
	if err != nil {
		err = fmt.Errorf("storage: get: %w", err)
	}

	var row rowState // the zero rowState stands for no row
	if val != nil {
		row = rowState{digest: sha256.Sum256(val), e: e} // outside the lock
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if f.load == ld {
		f.load = nil
	}
	if err == nil && s.mayFillLocked(f, ld.since, epoch, row, now) {
		if val != nil {
			s.fillLocked(key, h, val, row, nil, now)
		} else {
			s.mem.dead.put(key, h, now.Add(s.cfg.MaxAge))
		}
	}
	ld.val, ld.row, ld.err = val, row, err
	close(ld.done)
	s.releaseLocked(h, f)
}
