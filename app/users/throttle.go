package users

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Throttle limits failed logins per account and per client address (OWASP ASVS 2.2.1), with
// exact counts shared by every instance: they live in the login_failures table
// (migrations/0003), one row per key, and a failed attempt is one atomic upsert.
//
// A key reaching its limit is throttled for the lockout, counted from its latest failure; each
// further failure (one can only happen once a throttle has passed) doubles it, up to
// lockoutMax. A key's count is forgotten window after its latest failure. A throttled login is
// refused before any hashing. It is safe for concurrent use and holds no state of its own.
// Accounts has its own; another Throttle is only needed to sweep the table (SweepEvery).
type Throttle struct {
	db         *pgxpool.Pool
	timeout    time.Duration // of each statement
	now        func() time.Time
	accountMax int // failures per account before it is throttled
	addressMax int // failures per client address (across accounts: password spraying)
	window     time.Duration
	lockout    time.Duration
	lockoutMax time.Duration
}

// NewThrottle returns the Throttle over db with the limits of cfg, timeout the deadline of each
// statement and now its clock.
func NewThrottle(db *pgxpool.Pool, cfg Config, timeout time.Duration, now func() time.Time) *Throttle {
	return &Throttle{
		db: db, timeout: timeout, now: now,
		accountMax: cfg.AccountFailures, addressMax: cfg.AddressFailures,
		window: cfg.FailureWindow, lockout: cfg.Lockout, lockoutMax: cfg.LockoutMax,
	}
}

// accountKey is the throttle key of the account with this normalised email. It is hashed so
// that the emails that strangers type, existing or not, are not kept in clear; it must be the
// same on every instance, so the hash is not keyed.
func accountKey(email string) string {
	sum := sha256.Sum256([]byte(email))
	return "account:" + hex.EncodeToString(sum[:16])
}

// addressKey is the throttle key of a client address.
func addressKey(addr string) string { return "address:" + addr }

// throttleState is what check found.
type throttleState struct {
	wait           time.Duration // > 0: throttled for this long still
	accountCounted bool          // the account has failures on record (a success clears them)
}

// check says whether an attempt on the account and from the address may go ahead. One SELECT.
func (t *Throttle) check(ctx context.Context, account, address string) (throttleState, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	rows, err := t.db.Query(ctx, "SELECT key, failures, last_failure FROM login_failures WHERE key = ANY($1)",
		[]string{account, address})
	if err != nil {
		return throttleState{}, fmt.Errorf("read failed logins: %w", err)
	}
	var st throttleState
	now := t.now()
	err = t.eachCount(rows, account, func(isAccount bool, failures, limit int, last time.Time) {
		if now.Sub(last) >= t.window {
			return // forgotten
		}
		st.accountCounted = st.accountCounted || isAccount
		st.wait = max(st.wait, t.remaining(failures, limit, last, now))
	})
	if err != nil {
		return throttleState{}, fmt.Errorf("read failed logins: %w", err)
	}
	return st, nil
}

// eachCount calls f for every (key, failures, last_failure) row of rows, with whether the key is
// account's and the limit of its kind, and closes rows.
func (t *Throttle) eachCount(rows pgx.Rows, account string, f func(isAccount bool, failures, limit int, last time.Time)) error {
	var (
		key      string
		failures int
		last     time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&key, &failures, &last}, func() error {
		limit := t.addressMax
		if key == account {
			limit = t.accountMax
		}
		f(key == account, failures, limit, last)
		return nil
	})
	return err
}

// remaining is how long a key with failures (the latest at last) is still throttled at now.
func (t *Throttle) remaining(failures, limit int, last, now time.Time) time.Duration {
	if failures < limit {
		return 0
	}
	d := t.lockout
	for i := limit; i < failures && d < t.lockoutMax; i++ {
		d *= 2
	}
	return max(0, last.Add(min(d, t.lockoutMax)).Sub(now))
}

// fail records one failed attempt on the account and from the address, in one statement that
// counts both keys atomically, and returns how long the attempt's keys are now throttled.
func (t *Throttle) fail(ctx context.Context, account, address string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	now := t.now()
	// A count whose latest failure is a window old or more starts again at 1. greatest() keeps
	// last_failure from going back when instances' clocks disagree.
	rows, err := t.db.Query(ctx, `
		INSERT INTO login_failures AS f (key, failures, last_failure)
		VALUES ($1, 1, $3), ($2, 1, $3)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN f.last_failure <= $3::timestamptz - $4::interval THEN 1 ELSE f.failures + 1 END,
			last_failure = greatest(f.last_failure, $3)
		RETURNING key, failures, last_failure`,
		account, address, now, t.window)
	if err != nil {
		return 0, fmt.Errorf("count failed login: %w", err)
	}
	var wait time.Duration
	err = t.eachCount(rows, account, func(_ bool, failures, limit int, last time.Time) {
		wait = max(wait, t.remaining(failures, limit, last, now))
	})
	if err != nil {
		return 0, fmt.Errorf("count failed login: %w", err)
	}
	return wait, nil
}

// clear forgets the failures of the account, after a successful login. The address keeps its
// count: a sprayer must not reset it by logging in to an account of its own.
func (t *Throttle) clear(ctx context.Context, account string) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	if _, err := t.db.Exec(ctx, "DELETE FROM login_failures WHERE key = $1", account); err != nil {
		return fmt.Errorf("clear failed logins: %w", err)
	}
	return nil
}

// sweepBatch bounds the rows one sweep statement deletes, so that it never holds many locks.
const sweepBatch = 10000

// sweep deletes the rows that are forgotten (their latest failure a window old or more) and
// returns how many it deleted.
func (t *Throttle) sweep(ctx context.Context) (int64, error) {
	var total int64
	for {
		qctx, cancel := context.WithTimeout(ctx, t.timeout)
		tag, err := t.db.Exec(qctx, `
			DELETE FROM login_failures WHERE key IN (
				SELECT key FROM login_failures WHERE last_failure <= $1::timestamptz - $2::interval LIMIT $3)`,
			t.now(), t.window, sweepBatch)
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
