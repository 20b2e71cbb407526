package storage

import (
	"crypto/sha256"
	"time"
)

// This file holds the per-key state of operations in flight and the one rule that decides
// whether a value may enter memory. Every function here expects Store.mu held (suffix Locked);
// functions elsewhere without the suffix take it themselves.

// flight is the per-key bookkeeping of operations in flight. It exists while refs > 0.
//
// Every event on the key that could make a copy stale (a Set or Delete starting or ending, a
// notification, a flush) moves gen forward. A read (or a write) notes gen when it starts; see
// mayFillLocked for what it may do with its value when it ends.
type flight struct {
	gen     uint64
	refs    int
	writers int   // Sets and Deletes in flight; no fill while one is
	load    *load // the read concurrent misses share; nil when none, or detached by an event
	// announced is the row that every event since announcedFrom announced: the last events on
	// the key were notifications of exactly that row. nil once any other event happened.
	announced     *rowState
	announcedFrom uint64 // gen just before the first of those notifications
}

// rowState identifies the content of a row: its value's SHA-256 and its expiry.
type rowState struct {
	digest [sha256.Size]byte
	e      int64
}

// load is one Postgres read shared by every Get that missed while it ran.
type load struct {
	done  chan struct{}
	since uint64 // the key's gen when the read began
	// Set before done is closed: the value (nil: no live row), its digest and expiry (the zero
	// rowState for none), or the read's error.
	val []byte
	row rowState
	err error
}

// mayFillLocked is the fill rule, the only place that decides whether a value may enter memory.
// A value read from Postgres (or just written to it) when the key's gen was since, and the
// memory tier's epoch was epoch, may enter memory at now only if:
//
//   - the memory tier is on and serving (listening, lease valid) and was not flushed since;
//   - no Set or Delete of the key is in flight;
//   - the row has not expired;
//   - nothing happened to the key since, or everything that happened since is notifications
//     announcing this very row (a value with an expiry at least as late).
//
// The last clause is what a read needs when the notification of the row it read arrives while
// it runs; requiring it of every event since the start, not only of the last one, is what stops
// a late notification of an old row, arriving after a Delete or Set, from letting a read that
// began before them put the old row back.
func (s *Store) mayFillLocked(f *flight, since, epoch uint64, row rowState, now time.Time) bool {
	if s.mem == nil || !s.servingLocked() || epoch != s.epoch || f.writers > 0 || expired(row.e, now) {
		return false
	}
	if f.gen == since {
		return true
	}
	return f.announced != nil && f.announcedFrom <= since &&
		f.announced.digest == row.digest && covers(f.announced.e, row.e)
}

// servingLocked reports whether the memory tier may answer: it is listening (always true over a
// stand-in tier) and, with a listener, its lease has not run out.
func (s *Store) servingLocked() bool {
	return s.coherent && (!s.leased || s.leaseOK)
}

// acquireLocked returns key's flight, creating it, and takes a reference.
func (s *Store) acquireLocked(h string) *flight {
	f, ok := s.flights[h]
	if !ok {
		f = &flight{gen: s.seq}
		s.flights[h] = f
	}
	f.refs++
	return f
}

// releaseLocked drops a reference taken by acquireLocked.
func (s *Store) releaseLocked(h string, f *flight) {
	f.refs--
	if f.refs == 0 && s.flights[h] == f {
		delete(s.flights, h)
	}
}

// release is releaseLocked for a caller that does not hold mu.
func (s *Store) release(h string, f *flight) {
	s.mu.Lock()
	s.releaseLocked(h, f)
	s.mu.Unlock()
}

// beginWriteLocked registers a Set or Delete of h: reads in flight may no longer fill, and the
// current memory copy goes, since the write may commit at any moment.
func (s *Store) beginWriteLocked(h string) *flight {
	f := s.acquireLocked(h)
	f.writers++
	s.bumpLocked(f)
	if s.mem != nil {
		s.mem.remove(h)
	}
	return f
}

// bumpLocked records an event on f's key other than a notification: reads in flight may not
// fill, and later misses start a read of their own.
func (s *Store) bumpLocked(f *flight) {
	s.seq++
	f.gen = s.seq
	f.load = nil
	f.announced = nil
}

// announceLocked records a notification that f's key now holds row. Unlike other events it
// leaves the read in flight attached: a read that began before the row was written can still
// return it, and Gets that join the read after this check its row against this one (miss).
func (s *Store) announceLocked(f *flight, row rowState) {
	from := f.gen
	if f.announced != nil && *f.announced == row {
		from = f.announcedFrom // one more notification of the same row: the run goes on
	}
	s.seq++
	f.gen = s.seq
	f.announced, f.announcedFrom = &row, from
}

// invalidateLocked drops key's value from memory, after its row was deleted, and stops reads in
// flight from filling it. A key remembered as dead stays so: the row is gone.
func (s *Store) invalidateLocked(h string) {
	if f, ok := s.flights[h]; ok {
		s.bumpLocked(f)
	}
	if s.mem != nil {
		s.mem.removeValue(h)
	}
}

// flushLocked empties the memory tier and stops every read in flight from filling it.
func (s *Store) flushLocked() {
	s.epoch++
	for _, f := range s.flights {
		s.bumpLocked(f)
	}
	if s.mem != nil {
		s.mem.clear()
	}
}

// fillLocked puts val, with its decoded form if known (nil: not yet), into memory until its row
// expires or MaxAge passes, whichever is first. Callers check mayFillLocked first.
func (s *Store) fillLocked(key, h string, val []byte, row rowState, decoded any, now time.Time) {
	deadline := now.Add(s.cfg.MaxAge)
	if row.e != 0 {
		if re := time.Unix(row.e, 0); re.Before(deadline) {
			deadline = re
		}
	}
	if ev := s.mem.put(key, h, val, deadline, row.e, row.digest, decoded); ev > 0 {
		s.stats.evictions.Add(uint64(ev))
	}
}

// covers reports whether a row expiring at rowE outlives a copy expiring at copyE (unix
// seconds, 0: never).
func covers(rowE, copyE int64) bool {
	return rowE == 0 || (copyE != 0 && copyE <= rowE)
}

// rowExpiry is the expiry in unix seconds of a row written at now for exp (0: none), rounded
// down: a value is never served after the expiry its Set asked for, and may expire up to a
// second earlier.
func rowExpiry(now time.Time, exp time.Duration) int64 {
	if exp == 0 {
		return 0
	}
	return now.Add(exp).Unix()
}

// expired reports whether a row with expiry e (unix seconds, 0: none) is expired at now, as
// postgres/v3 checks it (e <= now).
func expired(e int64, now time.Time) bool {
	return e != 0 && e <= now.Unix()
}
