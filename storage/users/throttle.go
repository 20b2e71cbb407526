package users

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Throttle limits failed password attempts per key (OWASP ASVS 2.2.1), with exact counts
// shared by every instance: they live in the login_failures table (migrations/0003),
// one row per key, and a failed attempt is one atomic upsert of its keys. There are three kinds
// of key (the Gate picks an attempt's): an account, counting the attempts of clients without a
// device cookie for it; a device, counting the attempts of one browser that logged in to the
// account before; a client address prefix, counting across accounts (password spraying).
//
// A key reaching its limit (Config.AccountFailures for accounts and devices,
// Config.AddressFailures for addresses) is throttled for Config.Lockout, counted from its
// latest failure; each further failure (one can only come once a throttle has passed) doubles
// it, up to Config.LockoutMax. The count is forgotten only once the key has been quiet (no
// failure) for Config.FailureWindow after its throttle ended, so an attacker that sends its
// next guess as soon as it may never sees it reset. Besides, an account or device key counts
// its consecutive failures since its last success; once they reach Config.HardLimit the key is
// refused whatever the time, until a success on it (a device) or a password change (either).
// Consecutive failures below the limit are forgotten after countMemory without one.
//
// A throttled attempt costs the database nothing once this instance knows of the throttle: it
// remembers each throttled key until its Retry-After (from the statement that found or made the
// throttle), in a set of at most maxLocks keys. It is safe for concurrent use.
type Throttle struct {
	db         *pgxpool.Pool
	timeout    time.Duration // of each statement
	now        func() time.Time
	accountMax int // failures per account or device before it is throttled
	addressMax int // failures per client address prefix (across accounts: password spraying)
	hardLimit  int // consecutive failures of an account or device key before it is refused
	window     time.Duration
	lockout    time.Duration
	lockoutMax time.Duration
	memory     time.Duration // how long a key's consecutive failures are kept without a new one
	locks      *lockSet
}

// NewThrottle returns the Throttle over db with the limits of cfg, timeout the deadline of each
// statement and now its clock.
func NewThrottle(db *pgxpool.Pool, cfg Config, timeout time.Duration, now func() time.Time) *Throttle {
	return &Throttle{
		db: db, timeout: timeout, now: now,
		accountMax: cfg.AccountFailures, addressMax: cfg.AddressFailures, hardLimit: cfg.HardLimit,
		window: cfg.FailureWindow, lockout: cfg.Lockout, lockoutMax: cfg.LockoutMax,
		memory: max(countMemory, cfg.FailureWindow+cfg.LockoutMax),
		locks:  newLockSet(maxLocks),
	}
}

// countMemory is how long consecutive failures below the hard limit are kept once a key has
// none: long enough that a patient attacker gains little by pausing (Config.HardLimit guesses
// per countMemory at most), short enough that the table does not keep every email ever typed.
const countMemory = 30 * 24 * time.Hour

// maxLocks bounds the throttled keys a Throttle remembers. A key beyond it is still refused,
// at the cost of a read per attempt.
const maxLocks = 10000

// Key prefixes. The prefix tells a key's kind, in Go and in SQL alike.
const (
	accountPrefix = "account:"
	devicePrefix  = "device:"
	addressPrefix = "address:"
)

// addressKey is the throttle key of a client address: its prefix of v4 bits (IPv4) or v6 bits
// (IPv6), in canonical text (netip.Prefix.String), so that the addresses of one client's
// network count as one. An IPv4-mapped IPv6 address counts as IPv4; a zone is dropped. Text that
// is not an address (Fiber validates it, so only a bug gives one) is its own key.
func addressKey(addr string, v4, v6 int) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addressPrefix + strings.Clone(addr)
	}
	ip = ip.WithZone("").Unmap()
	bits := v6
	if ip.Is4() {
		bits = v4
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return addressPrefix + ip.String()
	}
	return addressPrefix + p.String()
}

// throttleState is what check found.
type throttleState struct {
	wait    time.Duration // > 0: throttled for this long still
	known   bool          // the throttle came from this instance's memory, not from a read
	logged  bool          // with known: the throttle was already logged once
	counted bool          // keys[0] has failures on record (a success clears them)
}

// check says whether an attempt on keys may go ahead: keys[0] is its account or device key,
// keys[1], if any, its address key. A key this instance knows to be throttled costs no
// statement; otherwise it is one SELECT.
func (t *Throttle) check(ctx context.Context, keys []string) (throttleState, error) {
	now := t.now()
	if wait, logged, ok := t.locks.get(keys, now); ok {
		return throttleState{wait: wait, known: true, logged: logged}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	rows, err := t.db.Query(ctx, "SELECT key, failures, consecutive, last_failure FROM login_failures WHERE key = ANY($1)", keys)
	if err != nil {
		return throttleState{}, fmt.Errorf("read failed logins: %w", err)
	}
	var st throttleState
	first := false // this attempt is the first to find one of its throttles
	err = t.eachCount(rows, func(key string, failures, consecutive int, last time.Time) {
		st.counted = st.counted || key == keys[0]
		if wait := t.wait(key, failures, consecutive, last, now); wait > 0 {
			st.wait = max(st.wait, wait)
			if t.locks.put(key, now, now.Add(wait), true) { // this attempt logs it
				first = true
			}
		}
	})
	if err != nil {
		return throttleState{}, fmt.Errorf("read failed logins: %w", err)
	}
	if st.wait > 0 && !first {
		// Attempts that read the same throttle at once: another one logs it.
		st.known, st.logged = true, true
	}
	return st, nil
}

// eachCount calls f for every (key, failures, consecutive, last_failure) row of rows and
// closes rows.
func (t *Throttle) eachCount(rows pgx.Rows, f func(key string, failures, consecutive int, last time.Time)) error {
	var (
		key                   string
		failures, consecutive int
		last                  time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&key, &failures, &consecutive, &last}, func() error {
		f(key, failures, consecutive, last)
		return nil
	})
	return err
}

// limit is the failures a key may have before it is throttled.
func (t *Throttle) limit(key string) int {
	if strings.HasPrefix(key, addressPrefix) {
		return t.addressMax
	}
	return t.accountMax
}

// lockFor is how long a key is throttled after its latest failure, with failures counted.
func (t *Throttle) lockFor(failures, limit int) time.Duration {
	if failures < limit {
		return 0
	}
	d := t.lockout
	for i := limit; i < failures && d < t.lockoutMax; i++ {
		d *= 2
	}
	return min(d, t.lockoutMax)
}

// wait is how long a key with these counts (its latest failure at last) is still throttled at
// now. A key at the hard limit is refused for LockoutMax at a time: its Retry-After says when
// to ask again, not that it will pass.
func (t *Throttle) wait(key string, failures, consecutive int, last, now time.Time) time.Duration {
	if !strings.HasPrefix(key, addressPrefix) && consecutive >= t.hardLimit {
		return t.lockoutMax
	}
	return max(0, last.Add(t.lockFor(failures, t.limit(key))).Sub(now))
}

// limitSQL is limit in SQL, for the row f ($7 and $8 the limits of accounts and addresses);
// lockSQL is lockFor: Lockout doubled per further failure up to LockoutMax ($5 and $6), the
// doublings capped at $11 (doublings) so that the product never leaves interval's range.
const (
	limitSQL = `(CASE WHEN f.key LIKE 'address:%' THEN $8::int ELSE $7::int END)`
	lockSQL  = `(CASE WHEN f.failures < ` + limitSQL + ` THEN interval '0'
		ELSE least($5::interval * power(2, least(f.failures - ` + limitSQL + `, $11::int)), $6::interval) END)`
)

// doublings is how many times Lockout doubles before it reaches LockoutMax.
func (t *Throttle) doublings() int {
	n := 0
	for d := t.lockout; d > 0 && d < t.lockoutMax; d *= 2 { // d > 0: stops should d overflow
		n++
	}
	return n
}

// fail records one failed attempt on keys (as for check), in one statement that counts them all
// atomically, and returns how long the attempt's keys are now throttled. user is the id of the
// account's user, 0 for an email that is no user's; it is filed with the account or device key.
func (t *Throttle) fail(ctx context.Context, keys []string, user int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	now := t.now()
	users := make([]int64, len(keys)) // the address, if any, is nobody's
	users[0] = user
	// A count whose key was quiet for the window after its throttle ended starts again at 1;
	// consecutive failures below the hard limit are forgotten after the memory. greatest()
	// keeps last_failure from going back when instances' clocks disagree.
	rows, err := t.db.Query(ctx, `
		INSERT INTO login_failures AS f (key, failures, consecutive, last_failure, user_id)
		SELECT k, 1, 1, $3, nullif(u, 0) FROM unnest($1::text[], $2::bigint[]) AS t(k, u)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN f.last_failure + `+lockSQL+` + $4::interval <= $3::timestamptz
				THEN 1 ELSE f.failures + 1 END,
			consecutive = CASE WHEN f.consecutive < $9 AND f.last_failure <= $3::timestamptz - $10::interval
				THEN 1 ELSE f.consecutive + 1 END,
			last_failure = greatest(f.last_failure, $3),
			user_id = coalesce(excluded.user_id, f.user_id)
		RETURNING key, failures, consecutive, last_failure`,
		keys, users, now, t.window, t.lockout, t.lockoutMax, t.accountMax, t.addressMax, t.hardLimit, t.memory, t.doublings())
	if err != nil {
		return 0, fmt.Errorf("count failed login: %w", err)
	}
	var wait time.Duration
	err = t.eachCount(rows, func(key string, failures, consecutive int, last time.Time) {
		if w := t.wait(key, failures, consecutive, last, now); w > 0 {
			wait = max(wait, w)
			t.locks.put(key, now, now.Add(w), false) // the next attempt on it logs it
		}
	})
	if err != nil {
		return 0, fmt.Errorf("count failed login: %w", err)
	}
	return wait, nil
}

// clear forgets the failures of key, an account or device key, after a successful attempt on
// it. The address keeps its count: a sprayer must not reset it by logging in to an account of
// its own.
func (t *Throttle) clear(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	if _, err := t.db.Exec(ctx, "DELETE FROM login_failures WHERE key = $1", key); err != nil {
		return fmt.Errorf("clear failed logins: %w", err)
	}
	return nil
}

// sweepBatch bounds the rows one sweep statement deletes, so that it never holds many locks.
const sweepBatch = 10000

// sweep deletes the rows that can no longer matter and returns how many it deleted: an
// address quiet for the window after its longest throttle; an account or device under the
// hard limit without a failure for the memory. A key at the hard limit stays until a success
// or a password change clears it.
func (t *Throttle) sweep(ctx context.Context) (int64, error) {
	var total int64
	for {
		qctx, cancel := context.WithTimeout(ctx, t.timeout)
		tag, err := t.db.Exec(qctx, `
			DELETE FROM login_failures WHERE key IN (
				SELECT key FROM login_failures
				 WHERE key LIKE 'address:%' AND last_failure <= $1::timestamptz - $2::interval
				    OR key NOT LIKE 'address:%' AND consecutive < $4 AND last_failure <= $1::timestamptz - $5::interval
				 LIMIT $3)`,
			t.now(), t.window+t.lockoutMax, sweepBatch, t.hardLimit, t.memory)
		cancel()
		if err != nil {
			return total, fmt.Errorf("sweep failed logins: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < sweepBatch {
			return total, nil
		}
	}
}

// SweepInterval is how often a server should sweep login_failures (SweepEvery). Rows are small
// and a forgotten row is ignored anyway: the sweep only keeps the table from growing.
const SweepInterval = time.Minute

// SweepEvery deletes the forgotten counts every interval until ctx is done, logging a failed
// sweep to log and trying again at the next. The caller runs it in a goroutine it waits for.
func (t *Throttle) SweepEvery(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := t.sweep(ctx); err != nil && ctx.Err() == nil {
				log.Warn("sweep of failed logins failed; will retry", "err", err)
			}
		}
	}
}

// lockSet is the throttled keys this instance knows of, each until its throttle ends by the
// Throttle's clock, and whether an attempt refused by it was logged yet (one line per key per
// throttle). It holds at most max keys: when full, it drops those that ended, and a key that
// still finds no room is not remembered. It is safe for concurrent use.
type lockSet struct {
	mu   sync.Mutex
	keys map[string]lockEntry
	max  int
}

type lockEntry struct {
	until  time.Time
	logged bool
}

func newLockSet(limit int) *lockSet { return &lockSet{keys: make(map[string]lockEntry), max: limit} }

// get reports whether any of keys is throttled at now, for how long still (the longest), and
// whether every such key was logged already; it marks them logged.
func (s *lockSet) get(keys []string, now time.Time) (wait time.Duration, logged, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	logged = true
	for _, k := range keys {
		e, found := s.keys[k]
		if !found {
			continue
		}
		if !now.Before(e.until) {
			delete(s.keys, k)
			continue
		}
		ok = true
		wait = max(wait, e.until.Sub(now))
		if !e.logged {
			logged = false
			e.logged = true
			s.keys[k] = e
		}
	}
	return wait, logged, ok
}

// put remembers that key is throttled until until; now is the time by the same clock. It
// reports false when key was already known, logged, to be throttled at now: a concurrent
// attempt found the same throttle first and logs it.
func (s *lockSet) put(key string, now, until time.Time, logged bool) (first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, found := s.keys[key]; found && e.logged && now.Before(e.until) {
		if until.After(e.until) {
			e.until = until
			s.keys[key] = e
		}
		return false
	}
	if _, found := s.keys[key]; !found && len(s.keys) >= s.max {
		for k, e := range s.keys {
			if !now.Before(e.until) {
				delete(s.keys, k)
			}
		}
		if len(s.keys) >= s.max {
			return true
		}
	}
	s.keys[key] = lockEntry{until: until, logged: logged}
	return true
}
