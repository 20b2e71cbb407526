// Package storage provides Store, the tiered session storage behind Fiber's session middleware:
// a capped in-process memory tier (gofiber/storage/memory/v2) over PostgreSQL, which stays the
// source of truth. Rows have gofiber/storage/postgres/v3's layout (k text, v bytea, e bigint).
//
// Hot sessions are served from memory with no database round trip. Every write goes to Postgres
// first. Every change to a session row, made by any instance or by hand in psql, reaches every
// instance through LISTEN/NOTIFY and drops its memory copy; memory serves only while the
// listener has been heard from within Config.Lease, and an instance that loses its listening
// connection serves from Postgres alone until it listens again. The README in this directory
// states the rules.
//
// Keys are stored in Postgres, and sent in notifications, only as the SHA-256 of the key, so a
// dump of the sessions table holds no usable session cookie.
//
// The files: config.go (Config), store.go (Store's life: New, Close), read.go (Get, GetDecoded),
// write.go (Set, Touch, Delete, Reset), flight.go (per-key state and the fill rule), listener.go
// (LISTEN, notifications, the lease), postgres.go (SQL of the tier), owner.go (the rows
// of an owner: DeleteOwner, Owned, DeleteHandle), sweep.go, memory.go (the LRU over
// memory/v2), stats.go.
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrDeleted is returned by Set when the key was deleted (a logout) after the caller loaded it:
// the store refuses to bring a deleted session back (Config.Tombstones). Callers map it to 401.
var ErrDeleted = errors.New("storage: key was deleted")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("storage: store is closed")

// Store is a fiber.Storage with a capped memory tier over Postgres. It is safe for concurrent
// use. Its Fiber-style methods (Get, Set, Delete, Reset) run with Config.QueryTimeout as their
// deadline; the ...WithContext methods also honour the caller's context, on a memory hit too.
//
// Returned values are the caller's own copies. Given values are copied before Set returns.
//
// A Store opens no connection of its own besides the listener: an instance uses at most the
// pool's MaxConns connections plus one.
type Store struct {
	cfg  Config
	tier tier
	pool *pgxpool.Pool // nil over a stand-in tier

	// mu guards everything below it. The memory tier is only read or changed with mu held.
	mu sync.Mutex
	// mem is nil when the memory tier is off.
	mem *memTier
	// flights holds the per-key state of every operation in flight; see flight.
	flights map[string]*flight
	// seq numbers events on keys; a flight's gen is the seq of its key's last event.
	seq uint64
	// epoch changes whenever the whole memory tier is flushed; fills from an older epoch are
	// dropped.
	epoch uint64
	// coherent is true while the memory tier may serve: always with a stand-in tier, and with
	// Postgres only while the listener is listening.
	coherent bool
	// leased is true when a listener holds a lease; memory then serves only while leaseOK,
	// which leaseTimer turns off at leaseEnd (on the real clock, whatever Config.Now is).
	leased     bool
	leaseOK    bool
	leaseEnd   time.Time
	leaseTimer *time.Timer
	closed     bool

	// life ends at Close: it cancels in-flight Postgres calls and stops goroutines.
	life context.Context
	end  context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once

	stats counters
	// hook, when set by tests, is called at named points of an operation.
	hook atomic.Pointer[func(point, key string)]
}

// New starts a Store on pool, whose database must have the project's migrations applied. It
// starts listening for changes before it returns and fails if it cannot. New never panics and
// never closes pool; the caller closes pool after Close. The store runs its statements on pool
// and opens one more connection, the listener's.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("storage: nil pool")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.QueryTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		return nil, fmt.Errorf("storage: ping %s: %w", pool.Config().ConnConfig.Host, err)
	}
	if err := checkSchema(pctx, pool); err != nil {
		return nil, err
	}
	s := newStore(newPGTier(pool, cfg.Tombstones), pool, cfg, false)

	l, err := newListener(s, pool)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.leased = true
	ready := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		l.run(ready)
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("storage: listen: %w", err)
	}
	return s, nil
}

// newStore builds a Store over any tier; pool is nil for a tier other than Postgres. coherent
// says whether the memory tier may serve from the start: true without a listener, false until a
// listener listens.
func newStore(t tier, pool *pgxpool.Pool, cfg Config, coherent bool) *Store {
	s := &Store{
		cfg:      cfg,
		tier:     t,
		pool:     pool,
		flights:  make(map[string]*flight),
		coherent: coherent,
	}
	s.life, s.end = context.WithCancel(context.Background())
	if cfg.Capacity > 0 {
		dead := 0
		if cfg.Tombstones {
			dead = cfg.DeadCapacity
		}
		s.mem = newMemTier(cfg.Capacity, dead)
	}
	s.wg.Add(1)
	go s.sweeper()
	return s
}

// Close stops every goroutine the store started (listener, sweeper, in-flight loads) and waits
// for them; memory/v2's process-wide clock goroutine, started by the first memory/v2 store of
// the process, is not the store's and keeps running. Close cancels every Postgres call in
// flight, so it returns promptly whatever the database does (hung, gone or slow). It does not
// close the pool given to New. Calls after the first return nil; every other method then
// returns ErrClosed.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.leaseTimer != nil {
			s.leaseTimer.Stop()
		}
		s.mu.Unlock()
		s.end()
		s.wg.Wait()
		s.mu.Lock()
		if s.mem != nil {
			s.mem.close()
			s.mem.clear()
		}
		s.mu.Unlock()
	})
	return nil
}

// Conn returns the pool the store runs its statements on, as postgres/v3's Conn does.
func (s *Store) Conn() *pgxpool.Pool { return s.pool }

// isClosed reports whether Close has been called.
func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// refuse is what a call that stops before reaching either tier returns: ErrClosed after Close,
// whatever its input, and err (nil for input that is ignored) otherwise.
func (s *Store) refuse(err error) error {
	if s.isClosed() {
		return ErrClosed
	}
	return err
}

// hashKey returns the form of key that leaves the process: hex SHA-256.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	var buf [2 * sha256.Size]byte
	hex.Encode(buf[:], sum[:])
	return string(buf[:])
}

// callContext bounds a Postgres call by QueryTimeout and by Close.
func (s *Store) callContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, s.cfg.QueryTimeout)
	stop := context.AfterFunc(s.life, cancel)
	return ctx, func() { stop(); cancel() }
}

func (s *Store) callHook(point, h string) {
	if f := s.hook.Load(); f != nil {
		(*f)(point, h)
	}
}
