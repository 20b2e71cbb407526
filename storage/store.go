// Package storage provides Store, the tiered session storage behind Fiber's session middleware:
// a capped in-process memory tier (gofiber/storage/memory/v2) over PostgreSQL
// (gofiber/storage/postgres/v3), which stays the source of truth.
//
// Hot sessions are served from memory with no database round trip. Every write goes to Postgres
// first. Every change to a session row, made by any instance or by hand in psql, reaches every
// instance through LISTEN/NOTIFY and drops its memory copy; an instance that loses its listening
// connection serves from Postgres alone until it listens again.
//
// Keys are stored in Postgres, and sent in notifications, only as the SHA-256 of the key, so a
// dump of the sessions table holds no usable session cookie.
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

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
)

var _ fiber.Storage = (*Store)(nil)

// ErrDeleted is returned by Set when the key was deleted (a logout) after the caller loaded it:
// the store refuses to bring a deleted session back. Callers map it to 401.
var ErrDeleted = errors.New("storage: key was deleted")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("storage: store is closed")

// DefaultCapacity is the default number of entries in the memory tier.
const DefaultCapacity = 2000

// Config tunes a Store. Start from DefaultConfig; New rejects values that make no sense.
type Config struct {
	// Capacity is how many entries the memory tier holds; the least recently used entry makes
	// room for a new one. 0 turns the memory tier off: every Get reads Postgres.
	Capacity int
	// MaxAge bounds how long any entry stays in memory, whatever its expiry, including entries
	// that never expire. It is also the longest a copy could stay stale if a notification were
	// ever lost without the listening connection dropping.
	MaxAge time.Duration
	// QueryTimeout is the deadline of every Postgres call the store makes, on top of any
	// deadline in the caller's context.
	QueryTimeout time.Duration
	// ListenURL is a connection string for the LISTEN connection. Empty means the pool's own
	// connection settings. Set it when the pool goes through a transaction-mode pooler such as
	// PgBouncer, where LISTEN does not work: it must reach Postgres directly.
	ListenURL string
	// ReconnectMin and ReconnectMax bound the backoff between attempts to listen again.
	ReconnectMin, ReconnectMax time.Duration
	// HealthInterval is how long the listener waits for a notification before it pings its
	// connection, so a connection that died silently is noticed. TCP keepalives (1 s idle,
	// 1 s apart, 3 probes) on that connection notice a vanished peer sooner.
	HealthInterval time.Duration
	// SweepInterval is how often expired entries leave memory and expired tombstones leave
	// Postgres; postgres/v3 deletes expired session rows on the same interval.
	SweepInterval time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Decode, if set, turns a stored value into the form the application reads, for
	// GetDecoded. Its result is kept with the memory entry and shared by every caller until the
	// value changes, so it must never be modified after Decode returns.
	Decode func(val []byte) (any, error)
}

// DefaultConfig returns the defaults: 2,000 entries, 10 minutes maximum age in memory, 3 s per
// Postgres call, reconnecting after 100 ms to 2 s, a health ping after 5 s of silence, and a
// sweep every 10 s.
func DefaultConfig() Config {
	return Config{
		Capacity:       DefaultCapacity,
		MaxAge:         10 * time.Minute,
		QueryTimeout:   3 * time.Second,
		ReconnectMin:   100 * time.Millisecond,
		ReconnectMax:   2 * time.Second,
		HealthInterval: 5 * time.Second,
		SweepInterval:  10 * time.Second,
		Now:            time.Now,
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Capacity < 0 {
		errs = append(errs, fmt.Errorf("Capacity %d is negative", c.Capacity))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"MaxAge", c.MaxAge}, {"QueryTimeout", c.QueryTimeout}, {"ReconnectMin", c.ReconnectMin},
		{"ReconnectMax", c.ReconnectMax}, {"HealthInterval", c.HealthInterval}, {"SweepInterval", c.SweepInterval},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", d.name, d.v))
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		errs = append(errs, fmt.Errorf("ReconnectMax %v is below ReconnectMin %v", c.ReconnectMax, c.ReconnectMin))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage: config: %w", err)
	}
	return nil
}

// Store is a fiber.Storage with a capped memory tier over Postgres. It is safe for concurrent
// use. Its Fiber-style methods (Get, Set, Delete, Reset) run with Config.QueryTimeout as their
// deadline; the ...WithContext methods also honour the caller's context.
//
// Returned values are the caller's own copies. Given values are copied before Set returns.
type Store struct {
	cfg  Config
	tier tier
	pool *pgxpool.Pool // nil with a stand-in tier

	// mu guards everything below it. The memory tier is only read or changed with mu held.
	mu sync.Mutex
	// mem is nil when the memory tier is off.
	mem *memTier
	// flights holds the per-key state of every operation in flight; see flight.
	flights map[string]*flight
	// seq numbers invalidations; a flight's gen is the seq of its key's last invalidation.
	seq uint64
	// epoch changes whenever the whole memory tier is flushed; fills from an older epoch are
	// dropped.
	epoch uint64
	// coherent is true while the memory tier may serve: always with a stand-in tier, and with
	// Postgres only while the listener is listening.
	coherent bool
	closed   bool

	// life ends at Close: it cancels in-flight Postgres calls and stops goroutines.
	life context.Context
	end  context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once

	stats counters
	// hook, when set by tests, is called at named points of an operation.
	hook atomic.Pointer[func(point, key string)]
}

// flight is the per-key bookkeeping of operations in flight. It exists while refs > 0.
//
// It designs out the read-fill/invalidate race: a miss captures gen before it reads Postgres
// and may fill memory only if gen is unchanged when the read returns. Every Set, Delete and
// invalidation of the key bumps gen, so a read that began before them cannot put the old value
// back afterwards.
type flight struct {
	gen     uint64
	refs    int
	writers int       // Sets and Deletes in flight; no fill while one is
	load    *load     // the read shared by concurrent misses; nil when none or detached
	pending *rowState // what the one Set in flight writes, to recognise its own notification
	// notified is the row announced by the notification that last bumped gen (to notifiedGen),
	// if one did: a read that returns exactly that row is as fresh as the notification and may
	// fill.
	notified    *rowState
	notifiedGen uint64
}

// rowState identifies the content of a row: its value's SHA-256 and its expiry.
type rowState struct {
	digest [sha256.Size]byte
	e      int64
}

// load is one Postgres read shared by every Get that missed while it ran.
type load struct {
	done chan struct{}
	val  []byte
	err  error
}

// New starts a Store on pool, whose database must have the project's migrations applied. It
// starts listening for changes before it returns and fails if it cannot. New never panics and
// never closes pool; the caller closes pool after Close.
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
	t, err := newPGTier(pctx, pool, cfg)
	if err != nil {
		return nil, err
	}
	s := newStore(t, pool, cfg, false)

	l, err := newListener(s, pool)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
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
		s.mem = newMemTier(cfg.Capacity)
	}
	s.wg.Add(1)
	go s.sweeper()
	return s
}

// hashKey returns the form of key that leaves the process: hex SHA-256.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	var buf [2 * sha256.Size]byte
	hex.Encode(buf[:], sum[:])
	return string(buf[:])
}

// Get returns the value of key, or nil when it does not exist or has expired.
func (s *Store) Get(key string) ([]byte, error) {
	return s.GetWithContext(context.Background(), key)
}

// GetWithContext is Get with the caller's deadline and cancellation. Concurrent misses for one
// key share a single Postgres read; a caller whose context ends stops waiting for it.
func (s *Store) GetWithContext(ctx context.Context, key string) ([]byte, error) {
	if key == "" {
		return nil, nil
	}
	h := hashKey(key)
	now := s.cfg.Now()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.mem != nil && s.coherent {
		if v, ok := s.mem.get(h, now); ok {
			s.mu.Unlock()
			s.stats.hits.Add(1)
			return v, nil
		}
	}
	s.stats.misses.Add(1)
	f := s.acquire(h)
	ld := f.load
	if ld == nil {
		ld = &load{done: make(chan struct{})}
		f.load = ld
		f.refs++ // the loader's own reference
		gen, epoch := f.gen, s.epoch
		s.wg.Add(1)
		go s.loadKey(context.WithoutCancel(ctx), h, f, ld, gen, epoch)
	}
	s.mu.Unlock()

	defer s.releaseLocked(h, f)
	select {
	case <-ld.done:
		if ld.err != nil {
			return nil, ld.err
		}
		if ld.val == nil {
			return nil, nil
		}
		return append([]byte(nil), ld.val...), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// GetDecoded returns Config.Decode of key's value, or nil when the key does not exist or has
// expired. The decoded form lives with the memory entry: a warm key is decoded once per value,
// not once per call, and a hit copies nothing. Without Config.Decode it returns an error.
func (s *Store) GetDecoded(ctx context.Context, key string) (any, error) {
	if s.cfg.Decode == nil {
		return nil, errors.New("storage: GetDecoded needs Config.Decode")
	}
	if key == "" {
		return nil, nil
	}
	h := hashKey(key)
	now := s.cfg.Now()
	s.mu.Lock()
	if s.mem != nil && s.coherent && !s.closed {
		if n, ok := s.mem.touch(h, now); ok && n.decoded != nil {
			d := n.decoded
			s.mu.Unlock()
			s.stats.hits.Add(1)
			return d, nil
		}
	}
	s.mu.Unlock()

	val, err := s.GetWithContext(ctx, key)
	if err != nil || val == nil {
		return nil, err
	}
	d, err := s.cfg.Decode(val)
	if err != nil {
		return nil, fmt.Errorf("storage: decode: %w", err)
	}
	// Keep it with the entry only if the entry still holds exactly these bytes.
	digest := sha256.Sum256(val)
	s.mu.Lock()
	if s.mem != nil {
		if n, ok := s.mem.lookup(h); ok && n.digest == digest {
			n.decoded = d
		}
	}
	s.mu.Unlock()
	return d, nil
}

// loadKey reads key from Postgres for every Get waiting on ld, and fills memory if no write,
// delete, invalidation or flush happened to the key since gen and epoch were taken.
func (s *Store) loadKey(parent context.Context, h string, f *flight, ld *load, gen, epoch uint64) {
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
	if err == nil && val != nil && s.fillAllowed(f, s.freshGen(f, gen, row), epoch) {
		s.fill(h, val, row, now)
	}
	ld.val, ld.err = val, err
	close(ld.done)
	s.release(h, f)
}

// Set stores val under key for exp (0: no expiry). Postgres is written first; memory holds the
// value only once Postgres has accepted it. An empty key or value is ignored, as in Fiber.
// It returns ErrDeleted when key was deleted and has not expired yet, and a negative exp is an
// error.
func (s *Store) Set(key string, val []byte, exp time.Duration) error {
	return s.SetWithContext(context.Background(), key, val, exp)
}

// SetWithContext is Set with the caller's deadline and cancellation. When it returns an error
// other than ErrDeleted the write may or may not have reached Postgres (a deadline can strike
// after the commit); memory then holds no copy of the key, so the next Get reads the truth.
func (s *Store) SetWithContext(ctx context.Context, key string, val []byte, exp time.Duration) error {
	if key == "" || len(val) == 0 {
		return nil
	}
	if exp < 0 {
		return fmt.Errorf("storage: set: negative expiry %v", exp)
	}
	h := hashKey(key)
	val = append([]byte(nil), val...) // Fiber reuses its buffers
	row := rowState{digest: sha256.Sum256(val), e: rowExpiry(s.cfg.Now(), exp)}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	f := s.beginWrite(h)
	if f.writers == 1 {
		f.pending = &row
	} else {
		f.pending = nil // several writes in flight: recognise none of them as our own
	}
	gen, epoch := f.gen, s.epoch
	s.mu.Unlock()

	ctx, cancel := s.callContext(ctx)
	s.callHook("set:before", h)
	err := s.tier.set(ctx, h, val, exp)
	cancel()
	s.stats.writes.Add(1)
	s.callHook("set:after", h)

	s.mu.Lock()
	defer s.mu.Unlock()
	f.writers--
	fill := err == nil && s.fillAllowed(f, gen, epoch)
	s.invalidateFlight(f) // reads that began during the write must not fill the old value
	if now := s.cfg.Now(); fill && !expired(row.e, now) {
		s.fill(h, val, row, now)
	}
	if f.writers == 0 {
		f.pending = nil
	}
	s.release(h, f)
	if errors.Is(err, ErrDeleted) {
		return ErrDeleted
	}
	if err != nil {
		return fmt.Errorf("storage: set: %w", err)
	}
	return nil
}

// Delete removes key from Postgres and from memory. Deleting a missing key is not an error.
// Once Delete of an existing row returns, no Set can bring the key back until the row's expiry
// has passed (seven days for a row without expiry): such a Set returns ErrDeleted. A Set whose
// row was not yet committed when Delete ran is not covered: there was nothing to delete.
func (s *Store) Delete(key string) error {
	return s.DeleteWithContext(context.Background(), key)
}

// DeleteWithContext is Delete with the caller's deadline and cancellation.
func (s *Store) DeleteWithContext(ctx context.Context, key string) error {
	if key == "" {
		return nil
	}
	h := hashKey(key)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	f := s.beginWrite(h)
	s.mu.Unlock()

	ctx, cancel := s.callContext(ctx)
	s.callHook("delete:before", h)
	err := s.tier.delete(ctx, h)
	cancel()
	s.stats.deletes.Add(1)

	s.mu.Lock()
	f.writers--
	s.invalidateFlight(f)
	if s.mem != nil {
		s.mem.remove(h)
	}
	s.release(h, f)
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

// Close stops every goroutine the store started (listener, sweeper, in-flight loads,
// postgres/v3's clean-up) and waits for them; memory/v2's process-wide clock goroutine, started
// by the first memory/v2 store of the process, is not the store's and keeps running. Close does
// not close the pool given to New. Calls after the first return nil; other methods then return
// ErrClosed.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.end()
		s.wg.Wait()
		err = s.tier.close()
		s.mu.Lock()
		if s.mem != nil {
			s.mem.close()
			s.mem.clear()
		}
		s.mu.Unlock()
	})
	return err
}

// Bind records owner as the owner of key's row, so that DeleteOwner can end it with the
// owner's other sessions. It returns an error when no row for key exists.
func (s *Store) Bind(ctx context.Context, key, owner string) error {
	if s.pool == nil {
		return errors.New("storage: bind: no database")
	}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, "UPDATE "+Table+" SET owner = $2 WHERE k = $1", hashKey(key), owner)
	if err != nil {
		return fmt.Errorf("storage: bind: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("storage: bind: %w", ErrDeleted)
	}
	return nil
}

// DeleteOwner deletes every key bound to owner, on this instance at once and on every other
// instance through their listeners, and returns how many it deleted.
func (s *Store) DeleteOwner(ctx context.Context, owner string) (int, error) {
	if s.pool == nil {
		return 0, errors.New("storage: delete owner: no database")
	}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	keys, err := deleteOwner(ctx, s.pool, owner)
	s.mu.Lock()
	for _, h := range keys {
		s.invalidateLocked(h)
	}
	s.mu.Unlock()
	s.stats.deletes.Add(uint64(len(keys)))
	return len(keys), err
}

// DeleteOwner deletes every session bound to owner in the database behind db. Running stores
// drop their copies when notified. It is for tools that run without a Store, such as a
// password change from the command line.
func DeleteOwner(ctx context.Context, db *pgxpool.Pool, owner string) (int, error) {
	keys, err := deleteOwner(ctx, db, owner)
	return len(keys), err
}

func deleteOwner(ctx context.Context, db *pgxpool.Pool, owner string) ([]string, error) {
	rows, err := db.Query(ctx, "DELETE FROM "+Table+" WHERE owner = $1 RETURNING k", owner)
	if err != nil {
		return nil, fmt.Errorf("storage: delete owner: %w", err)
	}
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return keys, fmt.Errorf("storage: delete owner: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return keys, fmt.Errorf("storage: delete owner: %w", err)
	}
	return keys, nil
}

// callContext bounds a Postgres call by QueryTimeout and by Close.
func (s *Store) callContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, s.cfg.QueryTimeout)
	stop := context.AfterFunc(s.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// acquire returns key's flight, creating it, and takes a reference. mu must be held.
func (s *Store) acquire(h string) *flight {
	f, ok := s.flights[h]
	if !ok {
		f = &flight{gen: s.seq}
		s.flights[h] = f
	}
	f.refs++
	return f
}

// release drops a reference taken by acquire. mu must be held.
func (s *Store) release(h string, f *flight) {
	f.refs--
	if f.refs == 0 && s.flights[h] == f {
		delete(s.flights, h)
	}
}

func (s *Store) releaseLocked(h string, f *flight) {
	s.mu.Lock()
	s.release(h, f)
	s.mu.Unlock()
}

// beginWrite registers a Set or Delete of h: reads in flight may no longer fill, and the
// current memory copy goes, since the write may commit at any moment. mu must be held.
func (s *Store) beginWrite(h string) *flight {
	f := s.acquire(h)
	f.writers++
	s.invalidateFlight(f)
	if s.mem != nil {
		s.mem.remove(h)
	}
	return f
}

// invalidateFlight makes every read of f's key that is in flight unable to fill memory, and
// makes later misses start a read of their own. mu must be held.
func (s *Store) invalidateFlight(f *flight) {
	s.seq++
	f.gen = s.seq
	f.load = nil
	f.notified = nil
}

// invalidateLocked drops key from memory and stops reads in flight from filling it. mu must be
// held.
func (s *Store) invalidateLocked(h string) {
	if f, ok := s.flights[h]; ok {
		s.invalidateFlight(f)
	}
	if s.mem != nil {
		s.mem.remove(h)
	}
}

// flushLocked empties the memory tier and stops every read in flight from filling it. mu must
// be held.
func (s *Store) flushLocked() {
	s.epoch++
	for _, f := range s.flights {
		s.invalidateFlight(f)
	}
	if s.mem != nil {
		s.mem.clear()
	}
}

// fillAllowed reports whether a value read or written under (gen, epoch) may enter memory.
// mu must be held.
func (s *Store) fillAllowed(f *flight, gen, epoch uint64) bool {
	return s.mem != nil && s.coherent && epoch == s.epoch && f.gen == gen && f.writers == 0
}

// freshGen returns f.gen if the row a read returned is the one the latest notification
// announced, so that the read may fill although the notification arrived while it ran;
// otherwise it returns gen unchanged. mu must be held.
func (s *Store) freshGen(f *flight, gen uint64, row rowState) uint64 {
	if f.gen != gen && f.notified != nil && f.notifiedGen == f.gen && *f.notified == row {
		return f.gen
	}
	return gen
}

// fill puts val into memory until its row expires or MaxAge passes, whichever is first. mu
// must be held.
func (s *Store) fill(h string, val []byte, row rowState, now time.Time) {
	deadline := now.Add(s.cfg.MaxAge)
	if row.e != 0 {
		if re := time.Unix(row.e, 0); re.Before(deadline) {
			deadline = re
		}
	}
	if ev := s.mem.put(h, val, deadline, row.e, row.digest); ev > 0 {
		s.stats.evictions.Add(uint64(ev))
	}
}

// sweeper removes expired entries from memory and expired tombstones from Postgres.
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
		if s.pool != nil {
			ctx, cancel := s.callContext(context.Background())
			_ = sweepTombstones(ctx, s.pool, now) // retried next tick; tombstones only grow stale
			cancel()
		}
	}
}

func (s *Store) callHook(point, h string) {
	if f := s.hook.Load(); f != nil {
		(*f)(point, h)
	}
}

// rowExpiry is the expiry in unix seconds of a row written at now for exp (0: none), rounded
// down as postgres/v3 does, so that memory never outlives the row.
func rowExpiry(now time.Time, exp time.Duration) int64 {
	if exp == 0 {
		return 0
	}
	return now.Add(exp).Unix()
}

// expired reports whether a row with expiry e (unix seconds, 0: none) is expired at now; it
// matches postgres/v3's check e <= now.
func expired(e int64, now time.Time) bool {
	return e != 0 && e <= now.Unix()
}
