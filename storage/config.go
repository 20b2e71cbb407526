package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultCapacity is the default number of entries in the memory tier, and DefaultDeadCapacity
// the default number of keys it remembers as dead.
const (
	DefaultCapacity     = 2000
	DefaultDeadCapacity = 2000
)

// Config tunes a Store. Start from DefaultConfig; New rejects values that make no sense.
type Config struct {
	// Capacity is how many entries the memory tier holds; the least recently used entry makes
	// room for a new one. 0 turns the memory tier off: every Get reads Postgres.
	Capacity int
	// DeadCapacity is how many keys without a live row (deleted, expired or never written) the
	// memory tier remembers, least recently asked for out first, each for at most MaxAge: a Get
	// of one costs no read while it is remembered, so a logged-out session id sent again and
	// again costs one read per instance. Only with Tombstones and a memory tier; 0 turns it off.
	// A dead key is forgotten by the same events that drop a value (a write of it here, the
	// notification of a write elsewhere, a lost listener), so a key that is written after all
	// is served at once; with tombstones, the database refuses to bring a deleted key back in
	// any case until its row's expiry.
	DeadCapacity int
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
	// Lease is how long the memory tier may serve after the start of the listener's last
	// round trip to Postgres that came back (a ping, or the probe after LISTEN): a ping sent at
	// t renews it to t + Lease. Notifications renew nothing, since one that arrives says nothing
	// of how late it is. Past it, every Get reads Postgres until a ping is answered in time, so
	// a listening connection that hangs, or delivers late by any delay, serves a session
	// deleted elsewhere for at most Lease after the delete.
	Lease time.Duration
	// HealthInterval is how often the listener pings its connection to renew the lease,
	// whatever the traffic: an instance sends about one ping per HealthInterval. It must be
	// below Lease; at a third of it, memory keeps serving through a ping answered late.
	HealthInterval time.Duration
	// SweepInterval is how often expired rows and tombstones leave Postgres and expired
	// entries leave memory. Any positive duration is honoured.
	SweepInterval time.Duration
	// Tombstones makes a Delete (and Reset) refuse later writes to the deleted key until its
	// row would have expired: Set returns ErrDeleted, so a request that loaded a session
	// before a logout cannot save it back. On in DefaultConfig, as sessions need. Off, the
	// Store is a plain fiber.Storage: a key may be set again right after it was deleted, as a
	// rate limiter, CSRF token store or cache expects.
	Tombstones bool
	// Now is the clock of expiries. Nil means time.Now. (The lease runs on the real clock.)
	Now func() time.Time
	// Decode, if set, turns a stored value into the form the application reads, for
	// GetDecoded. Its result is kept with the memory entry and shared by every caller until the
	// value changes, so it must never be modified after Decode returns, but for fields that
	// are only ever read and written atomically.
	Decode func(val []byte) (any, error)
	// Owner, if set, files every value under an owner, for DeleteOwner, Owned and DeleteHandle:
	// Owner of the value's Decode form ("" for none). Set writes the owner with the value, in
	// the same statement, so a value is never stored without its owner; and the form Set decoded
	// is the one GetDecoded then returns. A value Decode refuses is not written. Owner needs
	// Decode.
	Owner func(decoded any) string
	// Logger receives one line per change of the listener's state: WARN when the memory tier
	// stops serving (connection lost, reconnecting, lease expired, notifications not heard),
	// INFO when it serves again, each with its reason. Nil logs nothing.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: 2,000 entries and 2,000 dead keys, 10 minutes maximum
// age in memory, 3 s per Postgres call, reconnecting after 100 ms to 2 s, a 1.5 s lease renewed
// by a ping every 500 ms (two statements a second per instance), a sweep every 10 s, and
// tombstones on.
func DefaultConfig() Config {
	return Config{
		Capacity:       DefaultCapacity,
		DeadCapacity:   DefaultDeadCapacity,
		MaxAge:         10 * time.Minute,
		QueryTimeout:   3 * time.Second,
		ReconnectMin:   100 * time.Millisecond,
		ReconnectMax:   2 * time.Second,
		Lease:          1500 * time.Millisecond,
		HealthInterval: 500 * time.Millisecond,
		SweepInterval:  10 * time.Second,
		Tombstones:     true,
		Now:            time.Now,
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Capacity < 0 {
		errs = append(errs, fmt.Errorf("Capacity %d is negative", c.Capacity))
	}
	if c.DeadCapacity < 0 {
		errs = append(errs, fmt.Errorf("DeadCapacity %d is negative", c.DeadCapacity))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"MaxAge", c.MaxAge}, {"QueryTimeout", c.QueryTimeout}, {"ReconnectMin", c.ReconnectMin},
		{"ReconnectMax", c.ReconnectMax}, {"Lease", c.Lease}, {"HealthInterval", c.HealthInterval},
		{"SweepInterval", c.SweepInterval},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", d.name, d.v))
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		errs = append(errs, fmt.Errorf("ReconnectMax %v is below ReconnectMin %v", c.ReconnectMax, c.ReconnectMin))
	}
	if c.HealthInterval >= c.Lease {
		errs = append(errs, fmt.Errorf("HealthInterval %v must be below Lease %v", c.HealthInterval, c.Lease))
	}
	if c.Owner != nil && c.Decode == nil {
		errs = append(errs, errors.New("Owner needs Decode"))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage: config: %w", err)
	}
	return nil
}
