package storage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// Set stores val under key for exp (0: no expiry). Postgres is written first; memory holds the
// value only once Postgres has accepted it. An empty key or value is ignored, as in Fiber.
// The row keeps its expiry in whole unix seconds, rounded down: the value is never returned
// after exp has passed, and may stop being returned up to a second before. It returns
// ErrDeleted when key was deleted and has not expired yet (Config.Tombstones), and a negative
// exp is an error. With Config.Owner, Set decodes val first (Config.Decode) and writes its
// owner with it; a value Decode refuses is an error, and nothing is written.
func (s *Store) Set(key string, val []byte, exp time.Duration) error {
	return s.SetWithContext(context.Background(), key, val, exp)
}

// SetWithContext is Set with the caller's deadline and cancellation. When it returns an error
// other than ErrDeleted the write may or may not have reached Postgres (a deadline can strike
// after the commit); memory then holds no copy of the key, so the next Get reads the truth.
func (s *Store) SetWithContext(ctx context.Context, key string, val []byte, exp time.Duration) error {
	if key == "" || len(val) == 0 {
		return s.refuse(nil)
	}
	if exp < 0 {
		return s.refuse(fmt.Errorf("storage: set: negative expiry %v", exp))
	}
	h := hashKey(key)
	val = append([]byte(nil), val...) // Fiber reuses its buffers
	row := rowState{digest: sha256.Sum256(val), e: rowExpiry(s.cfg.Now(), exp)}
	var (
		decoded any
		owner   string
	)
	if s.cfg.Owner != nil {
		d, err := s.cfg.Decode(val)
		if err != nil {
			return s.refuse(fmt.Errorf("storage: set: decode: %w", err))
		}
		decoded, owner = d, s.cfg.Owner(d)
	}

	w, err := s.startWrite(h)
	if err != nil {
		return err
	}
	ctx, cancel := s.callContext(ctx)
	s.callHook("set:before", h)
	err = s.tier.set(ctx, h, val, row.e, owner)
	cancel()
	s.stats.writes.Add(1)
	s.callHook("set:after", h)
	return s.finishWrite(w, key, val, row, decoded, err, "set")
}

// write is a Set or Touch of one key in flight: what startWrite noted for finishWrite.
type write struct {
	h            string
	f            *flight
	since, epoch uint64
	// The decoded form of the memory entry the write removed, and the digest of its value;
	// keptDecoded is nil when there was none.
	keptDecoded any
	keptDigest  [sha256.Size]byte
}

// startWrite registers a write of hashed key h (beginWriteLocked), or returns ErrClosed.
func (s *Store) startWrite(h string) (write, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return write{}, ErrClosed
	}
	w := write{h: h}
	if s.mem != nil {
		if n, ok := s.mem.lookup(h); ok {
			w.keptDecoded, w.keptDigest = n.decoded, n.digest
		}
	}
	w.f = s.beginWriteLocked(h)
	w.since, w.epoch = w.f.gen, s.epoch
	return w, nil
}

// finishWrite ends the write w of key, whose call to the tier returned err (ErrDeleted as is,
// anything else wrapped as op's). When the call succeeded, the row it left (val, row, with its
// decoded form if known) enters memory if the fill rule allows; when it returned ErrDeleted,
// the key has no live row, which the dead set may remember by the same rule. Reads that began
// during the write may not fill the old value in any case.
func (s *Store) finishWrite(w write, key string, val []byte, row rowState, decoded any, err error, op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.f.writers--
	now := s.cfg.Now()
	deleted := errors.Is(err, ErrDeleted)
	if deleted {
		row = rowState{}
	}
	fill := (err == nil || deleted) && s.mayFillLocked(w.f, w.since, w.epoch, row, now)
	s.bumpLocked(w.f)
	switch {
	case fill && deleted:
		s.mem.dead.put(key, w.h, now.Add(s.cfg.MaxAge))
	case fill:
		s.fillLocked(key, w.h, val, row, decoded, now)
	}
	s.releaseLocked(w.h, w.f)
	if errors.Is(err, ErrDeleted) {
		return ErrDeleted
	}
	if err != nil {
		return fmt.Errorf("storage: %s: %w", op, err)
	}
	return nil
}

// Touch moves key's expiry to expires (in whole seconds, rounded down) if that is later than
// the expiry it has, and changes nothing else, in one statement: the value, its owner and a key
// without expiry stay as they are, and a Touch that would not move the expiry writes nothing.
// Either way this instance's copy then holds the row as it is. No other instance is told (the
// migration's trigger sends nothing for a later expiry): their copies expire at the old time,
// which is still correct. Callers that touch a key from several instances save writes by
// agreeing on expires (the same value for a while, not "now + d"): every Touch after the first
// then only reads. Touch returns ErrDeleted when key has no live row (deleted, expired, or never
// written), so it never brings a key back; expires must be in the future. The key's decoded form
// (GetDecoded) is kept.
func (s *Store) Touch(ctx context.Context, key string, expires time.Time) error {
	if err := ctx.Err(); err != nil {
		return s.refuse(err)
	}
	now := s.cfg.Now()
	if e := expires.Unix(); expired(e, now) || e == 0 {
		return s.refuse(fmt.Errorf("storage: touch: expiry %v is not in the future", expires))
	}
	if key == "" {
		return s.refuse(ErrDeleted)
	}
	w, err := s.startWrite(hashKey(key))
	if err != nil {
		return err
	}
	ctx, cancel := s.callContext(ctx)
	val, e, err := s.tier.touch(ctx, w.h, expires.Unix(), now.Unix())
	cancel()
	s.stats.touches.Add(1)

	var (
		row     rowState
		decoded any // the decoded form survives if the value is unchanged
	)
	if err == nil {
		row = rowState{digest: sha256.Sum256(val), e: e}
		if w.keptDecoded != nil && w.keptDigest == row.digest {
			decoded = w.keptDecoded
		}
	}
	return s.finishWrite(w, key, val, row, decoded, err, "touch")
}

// Delete removes key from Postgres and from memory. Deleting a missing key is not an error.
// With Config.Tombstones, once Delete of an existing row returns, no Set can bring the key back
// until the row's expiry has passed on the store's clock, whatever the database's clock says
// (seven days for a row without expiry), and the sweep has removed its tombstone: such a Set
// returns ErrDeleted. A Set whose row was not yet committed when Delete ran is not covered:
// there was nothing to delete.
func (s *Store) Delete(key string) error {
	return s.DeleteWithContext(context.Background(), key)
}

// DeleteWithContext is Delete with the caller's deadline and cancellation.
func (s *Store) DeleteWithContext(ctx context.Context, key string) error {
	if key == "" {
		return s.refuse(nil)
	}
	h := hashKey(key)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	f := s.beginWriteLocked(h)
	since, epoch := f.gen, s.epoch
	s.mu.Unlock()

	ctx, cancel := s.callContext(ctx)
	s.callHook("delete:before", h)
	err := s.tier.delete(ctx, h)
	cancel()
	s.stats.deletes.Add(1)

	s.mu.Lock()
	f.writers--
	now := s.cfg.Now()
	dead := err == nil && s.mayFillLocked(f, since, epoch, rowState{}, now)
	s.bumpLocked(f)
	if s.mem != nil {
		s.mem.remove(h)
	}
	if dead {
		s.mem.dead.put(key, h, now.Add(s.cfg.MaxAge))
	}
	s.releaseLocked(h, f)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("storage: delete: %w", err)
	}
	return nil
}

// Reset deletes every key from Postgres and from memory.
func (s *Store) Reset() error {
	return s.ResetWithContext(context.Background())
}

// ResetWithContext is Reset with the caller's deadline and cancellation.
func (s *Store) ResetWithContext(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.flushLocked()
	s.mu.Unlock()
	s.stats.flushes.Add(1)

	ctx, cancel := s.callContext(ctx)
	err := s.tier.reset(ctx)
	cancel()

	s.mu.Lock()
	s.flushLocked()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("storage: reset: %w", err)
	}
	return nil
}
