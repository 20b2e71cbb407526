package users

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgfault"
)

// Accounts checks credentials against the users table. It is safe for concurrent use.
//
// Checking a password costs an argon2id hash (tens of milliseconds of one core, 19 MiB), so a
// login goes through three gates before it may cost one, in this order:
//
//  1. the throttle (per account and per client address), before any waiting;
//  2. a hashing slot: at most Config.HashSlots hashes run at once, and a login waits at most
//     Config.HashWait for one (its deadline) before it is refused (TryLater, 503 over HTTP);
//  3. the throttle again, once the slot is held, if the login had to wait for it: failures
//     recorded while it waited count.
//
// fasthttp never tells a handler that its client has gone, so these bounds are what keeps
// abandoned logins from queueing up hashes: a login whose deadline passed is never hashed.
type Accounts struct {
	db        *pgxpool.Pool
	timeout   time.Duration
	throttle  *Throttle
	slots     chan struct{}
	hashWait  time.Duration
	log       *slog.Logger
	onAttempt func(outcome string) // nil: nothing is told
	tagKey    []byte               // keys emailTag
}

// NewAccounts returns the Accounts over db with the settings of cfg. timeout is the deadline of
// each statement; now is the throttle's clock; log receives the security log line of each
// attempt; onAttempt, unless nil, is called with each attempt's outcome (success, failure,
// throttled, busy or error), for monitoring.
func NewAccounts(db *pgxpool.Pool, cfg Config, timeout time.Duration, now func() time.Time, log *slog.Logger, onAttempt func(outcome string)) *Accounts {
	return &Accounts{
		db:        db,
		timeout:   timeout,
		throttle:  NewThrottle(db, cfg, timeout, now),
		slots:     make(chan struct{}, cfg.HashSlots),
		hashWait:  cfg.HashWait,
		log:       log,
		onAttempt: onAttempt,
		tagKey:    []byte(rand.Text()),
	}
}

// TryLater is the error of a login refused before its password was checked. Over HTTP it is a
// 429 (Throttled) or a 503, with a Retry-After of After.
type TryLater struct {
	Throttled bool          // too many failed attempts on the account or from the address
	After     time.Duration // when the client may try again
}

func (e *TryLater) Error() string {
	if e.Throttled {
		return fmt.Sprintf("too many failed logins; retry after %v", e.After)
	}
	return fmt.Sprintf("too busy to check a password; retry after %v", e.After)
}

// dummyHash is checked for unknown emails so that they cost the same time as a wrong password.
// It is made with the current parameters, so the two paths stay alike when those change.
var dummyHash = sync.OnceValue(func() string { return hashPassword(rand.Text()) })

// retryBusy is the Retry-After of a login refused for want of a hashing slot.
const retryBusy = time.Second

// Authenticate returns the user whose email and password these are, for a login attempt from
// the client address addr. For an unknown email and for a wrong password alike it returns ok
// false and a nil error, after about the same time (a hash is checked either way), so that
// neither the answer nor its timing tells which emails exist. It returns a *TryLater, without
// checking the password, when the attempt is throttled or no hashing slot freed up within
// Config.HashWait of the call. Any other error means the check itself failed (the database is
// down, say). It writes one log line per attempt (logAttempt).
func (a *Accounts) Authenticate(ctx context.Context, email, password, addr string) (u User, ok bool, err error) {
	deadline := time.Now().Add(a.hashWait)
	email, addr = normaliseEmail(email), strings.Clone(addr) // addr may share a buffer its caller reuses (Fiber's do)
	account := accountKey(email)
	u, outcome, err := a.authenticate(ctx, email, password, account, addressKey(addr), deadline)
	a.logAttempt(u.ID, email, addr, outcome)
	if outcome != "success" {
		u = User{}
	}
	return u, outcome == "success", err
}

// authenticate does the work of Authenticate and returns the outcome it logs: success, failure,
// throttled, busy (no slot in time) or error. u.ID is set whenever the email is known.
func (a *Accounts) authenticate(ctx context.Context, email, password, account, address string, deadline time.Time) (u User, outcome string, err error) {
	// The user first, so that the log line of a throttled attempt names the account.
	qctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var hash string
	err = pgfault.Retry(qctx, a.db, func(q pgfault.Querier) error {
		return q.QueryRow(qctx, "SELECT id, email, password_hash FROM users WHERE lower(email) = $1",
			email).Scan(&u.ID, &u.Email, &hash)
	})
	known := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		hash = dummyHash()
	} else if err != nil {
		return u, "error", fmt.Errorf("find user: %w", err)
	}
	st, err := a.throttle.check(ctx, account, address)
	if err != nil {
		return u, "error", err
	}
	if st.wait > 0 {
		return u, "throttled", &TryLater{Throttled: true, After: st.wait}
	}

	waited := false
	select {
	case a.slots <- struct{}{}: // a slot at once, the usual case
	default:
		waited = true
		wait := time.NewTimer(time.Until(deadline))
		defer wait.Stop()
		select {
		case a.slots <- struct{}{}:
		case <-wait.C:
			return u, "busy", &TryLater{After: retryBusy}
		case <-ctx.Done():
			return u, "error", ctx.Err()
		}
	}
	defer func() { <-a.slots }()
	if !time.Now().Before(deadline) { // the slot and the deadline came together
		return u, "busy", &TryLater{After: retryBusy}
	}
	// Failures recorded while the login waited count. A login that got its slot at once has
	// nothing new to see: microseconds passed since the first check.
	if waited {
		if st, err = a.throttle.check(ctx, account, address); err != nil {
			return u, "error", err
		}
		if st.wait > 0 {
			return u, "throttled", &TryLater{Throttled: true, After: st.wait}
		}
	}
	ok, err := checkPassword(hash, password)
	if err != nil {
		return u, "error", fmt.Errorf("check password of user %d: %w", u.ID, err)
	}
	if !ok || !known {
		if _, err := a.throttle.fail(ctx, account, address); err != nil {
			return u, "error", err
		}
		return u, "failure", nil
	}
	if st.accountCounted {
		if err := a.throttle.clear(ctx, account); err != nil {
			return u, "error", err
		}
	}
	return u, "success", nil
}

// logAttempt writes the security log line of one login attempt: the user's id, or for an
// unknown email its emailTag, the client address and the outcome. Never the email, the password
// or anything of the session. It also tells onAttempt.
func (a *Accounts) logAttempt(userID int64, email, addr, outcome string) {
	if a.onAttempt != nil {
		a.onAttempt(outcome)
	}
	who := slog.Int64("user", userID)
	if userID == 0 {
		who = slog.String("email_tag", a.emailTag(email))
	}
	level := slog.LevelInfo
	if outcome != "success" {
		level = slog.LevelWarn
	}
	a.log.LogAttrs(context.Background(), level, "login", slog.String("outcome", outcome), who, slog.String("client", addr))
}

// emailTag is a short keyed hash of an email that matches no account: the same email gives the
// same tag in this instance's log, so that a run of attempts on it can be followed, but the
// key is random per process, so a list of emails cannot be hashed to find who was tried.
func (a *Accounts) emailTag(email string) string {
	m := hmac.New(sha256.New, a.tagKey)
	m.Write([]byte(email))
	return hex.EncodeToString(m.Sum(nil)[:6])
}
