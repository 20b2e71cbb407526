package storage

import (
	"context"
	"time"
)

// sweeper removes expired entries from memory, and expired rows and tombstones from Postgres,
// every SweepInterval until Close. Each Postgres sweep is bounded by QueryTimeout and cancelled
// by Close; a sweep that fails is retried on the next tick (expired rows are never served
// meanwhile: every read checks the expiry).
func (s *Store) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.life.Done():
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		s.mu.Lock()
		if s.mem != nil {
			s.mem.sweep(now)
		}
		s.mu.Unlock()
		ctx, cancel := s.callContext(context.Background())
		_ = s.tier.sweep(ctx, now)
		cancel()
	}
}
