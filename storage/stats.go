package storage

import "sync/atomic"

// Stats is a snapshot of a Store's counters, for monitoring. Counters only grow; Entries is the
// number of entries in memory at the time of the snapshot.
type Stats struct {
	Hits          uint64 // Gets answered from memory, and Cached calls that reported ok
	Misses        uint64 // Gets that went to Postgres (or joined a read in flight)
	Reads         uint64 // reads sent to Postgres
	Writes        uint64 // Sets sent to Postgres
	Touches       uint64 // Touch calls that reached Postgres: one statement each, more when the row changed under it; one that found the expiry already moved writes nothing
	Deletes       uint64 // keys deleted through this store
	Evictions     uint64 // entries dropped to respect Capacity
	Invalidations uint64 // notifications received from Postgres
	Flushes       uint64 // times the whole memory tier was emptied (listener lost, Reset)
	Reconnects    uint64 // times the listener connected again after losing its connection
	Pings         uint64 // pings the listener sent to renew its lease (one per HealthInterval)
	Entries       int    // entries in memory now
	Listening     bool   // whether the listener is listening (the memory tier serves only then)
}

type counters struct {
	hits, misses, reads, writes, touches, deletes, evictions, invalidations, flushes, reconnects, pings atomic.Uint64
}

// Stats returns the current counters. It is safe to call concurrently with anything.
func (s *Store) Stats() Stats {
	st := Stats{
		Hits:          s.stats.hits.Load(),
		Misses:        s.stats.misses.Load(),
		Reads:         s.stats.reads.Load(),
		Writes:        s.stats.writes.Load(),
		Touches:       s.stats.touches.Load(),
		Deletes:       s.stats.deletes.Load(),
		Evictions:     s.stats.evictions.Load(),
		Invalidations: s.stats.invalidations.Load(),
		Flushes:       s.stats.flushes.Load(),
		Reconnects:    s.stats.reconnects.Load(),
		Pings:         s.stats.pings.Load(),
	}
	s.mu.Lock()
	if s.mem != nil {
		st.Entries = s.mem.len()
	}
	st.Listening = s.coherent
	s.mu.Unlock()
	return st
}
