package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
		return nil, 0, err
	}
	if key == "" {
		return nil, 0, nil
	}
	now := s.cfg.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, 0, ErrClosed
	}
	if s.mem != nil && s.servingLocked() {
		if v, e, ok := s.mem.get(key, now); ok {
			s.mu.Unlock()
			s.stats.hits.Add(1)
			return v, e, nil
		}
	}
	s.mu.Unlock()
	return s.miss(ctx, key)
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
		return nil, time.Time{}, errors.New("storage: GetDecoded needs Config.Decode")
	}
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	if key == "" {
		return nil, time.Time{}, nil
	}
	now := s.cfg.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, time.Time{}, ErrClosed
	}
	if s.mem != nil && s.servingLocked() {
		if n, ok := s.mem.touch(key, now); ok && n.decoded != nil {
			d, e := n.decoded, n.rowExpiry
			s.mu.Unlock()
			s.stats.hits.Add(1)
			return d, unixTime(e), nil
		}
	}
	s.mu.Unlock()

	val, e, err := s.get(ctx, key)
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

// unixTime is the time of an expiry in unix seconds, the zero Time for 0 (none).
func unixTime(e int64) time.Time {
	if e == 0 {
		return time.Time{}
	}
	return time.Unix(e, 0)
}

// miss reads key from Postgres, joining the read already in flight for it if there is one.
func (s *Store) miss(ctx context.Context, key string) ([]byte, int64, error) {
	h := hashKey(key)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, 0, ErrClosed
	}
	s.stats.misses.Add(1)
	f := s.acquireLocked(h)
	ld := f.load
	if ld == nil {
		ld = &load{done: make(chan struct{})}
		f.load = ld
		f.refs++ // the loader's own reference
		since, epoch := f.gen, s.epoch
		s.wg.Add(1)
		go s.loadKey(context.WithoutCancel(ctx), key, h, f, ld, since, epoch)
	}
	s.mu.Unlock()

	defer s.release(h, f)
	select {
	case <-ld.done:
		if ld.err != nil {
			return nil, 0, ld.err
		}
		if ld.val == nil {
			return nil, 0, nil
		}
		return append([]byte(nil), ld.val...), ld.e, nil
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// loadKey reads key from Postgres for every Get waiting on ld, and fills memory if the fill
// rule (mayFillLocked) allows it.
func (s *Store) loadKey(parent context.Context, key, h string, f *flight, ld *load, since, epoch uint64) {
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

	var row rowState
	if val != nil {
		row = rowState{digest: sha256.Sum256(val), e: e} // outside the lock
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if f.load == ld {
		f.load = nil
	}
	if val != nil && s.mayFillLocked(f, since, epoch, row, now) {
		s.fillLocked(key, h, val, row, nil, now)
	}
	ld.val, ld.e, ld.err = val, e, err
	close(ld.done)
	s.releaseLocked(h, f)
}
