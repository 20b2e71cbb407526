package app

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/internal/pgfault"
)

// The users table (migrations/0002) belongs to app rather than handlers because both the login
// endpoint and the user commands of the CLI use it.

// accounts checks credentials against the users table. It is safe for concurrent use.
//
// Checking a password costs an argon2id hash (tens of milliseconds of one core, 19 MiB), so a
// login goes through three gates before it may cost one, in this order:
//
//  1. the throttle (per account and per client address), before any waiting;
//  2. a hashing slot: at most len(slots) hashes run at once, and a login waits at most hashWait
//     for one (its deadline) before it is refused with 503;
//  3. the throttle again, once the slot is held: failures recorded while the login waited count.
//
// fasthttp never tells a handler that its client has gone, so these bounds are what keeps
// abandoned logins from queueing up hashes: a login whose deadline passed is never hashed.
type accounts struct {
	db       *pgxpool.Pool
	timeout  time.Duration
	throttle *throttle
	slots    chan struct{}
	hashWait time.Duration
	log      *slog.Logger
	metrics  *metrics // counts outcomes; nil counts nothing
	tagKey   []byte   // keys emailTag
}

var _ handlers.Accounts = (*accounts)(nil)

func newAccounts(db *pgxpool.Pool, cfg Config, now func() time.Time, log *slog.Logger, m *metrics) *accounts {
	return &accounts{
		db:       db,
		timeout:  cfg.Store.QueryTimeout,
		throttle: newThrottle(db, cfg, now),
		slots:    make(chan struct{}, cfg.HashSlots),
		hashWait: cfg.HashWait,
		log:      log,
		metrics:  m,
		tagKey:   []byte(rand.Text()),
	}
}

// dummyHash is checked for unknown emails so that they cost the same time as a wrong password.
// It is made with the current parameters, so the two paths stay alike when those change.
var dummyHash = sync.OnceValue(func() string { return hashPassword(rand.Text()) })

// retryBusy is the Retry-After of a login refused for want of a hashing slot.
const retryBusy = time.Second

// Authenticate implements handlers.Accounts. Its deadline for a hashing slot starts when it is
// called. It writes one log line per attempt (logAttempt).
func (a *accounts) Authenticate(ctx context.Context, email, password, addr string) (handlers.User, bool, error) {
	deadline := time.Now().Add(a.hashWait)
	email, addr = normaliseEmail(email), strings.Clone(addr) // Fiber reuses addr's bytes
	account := accountKey(email)
	u, outcome, err := a.authenticate(ctx, email, password, account, addressKey(addr), deadline)
	a.logAttempt(u.ID, email, addr, outcome)
	if outcome != "success" {
		u = handlers.User{}
	}
	return u, outcome == "success", err
}

// authenticate does the work of Authenticate and returns the outcome it logs: success, failure,
// throttled, busy (no slot in time) or error. u.ID is set whenever the email is known.
func (a *accounts) authenticate(ctx context.Context, email, password, account, address string, deadline time.Time) (u handlers.User, outcome string, err error) {
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
		return u, "throttled", &handlers.TryLater{Throttled: true, After: st.wait}
	}

	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	select {
	case a.slots <- struct{}{}:
	case <-wait.C:
		return u, "busy", &handlers.TryLater{After: retryBusy}
	case <-ctx.Done():
		return u, "error", ctx.Err()
	}
	defer func() { <-a.slots }()
	if !time.Now().Before(deadline) { // the slot and the deadline came together
		return u, "busy", &handlers.TryLater{After: retryBusy}
	}
	if st, err = a.throttle.check(ctx, account, address); err != nil {
		return u, "error", err
	}
	if st.wait > 0 {
		return u, "throttled", &handlers.TryLater{Throttled: true, After: st.wait}
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
// or anything of the session. It also counts the outcome in the metrics.
func (a *accounts) logAttempt(userID int64, email, addr, outcome string) {
	a.metrics.observeLogin(outcome)
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
func (a *accounts) emailTag(email string) string {
	m := hmac.New(sha256.New, a.tagKey)
	m.Write([]byte(email))
	return hex.EncodeToString(m.Sum(nil)[:6])
}

// normaliseEmail is the form emails are stored and looked up in: trimmed and lower case.
func normaliseEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// checkNewEmail returns email normalised, or an error saying why it cannot be an account's
// email: it must be a bare address (no display name), at most 254 bytes.
func checkNewEmail(email string) (string, error) {
	email = normaliseEmail(email)
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" || len(email) > 254 {
		return "", fmt.Errorf("%q is not an email address like name@example.com", email)
	}
	return email, nil
}

// createUser adds a user with this email and password and returns it. The email must be new
// and the password pass checkNewPassword with at least minLen characters.
func createUser(ctx context.Context, db *pgxpool.Pool, email, password string, minLen int) (handlers.User, error) {
	email, err := checkNewEmail(email)
	if err != nil {
		return handlers.User{}, err
	}
	if err := checkNewPassword(password, email, minLen); err != nil {
		return handlers.User{}, err
	}
	u := handlers.User{Email: email}
	err = db.QueryRow(ctx, "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
		email, hashPassword(password)).Scan(&u.ID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return handlers.User{}, fmt.Errorf("a user with email %s already exists", email)
	}
	if err != nil {
		return handlers.User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// setPassword replaces the password of the user with this email and returns the user. The
// password must pass checkNewPassword with at least minLen characters. It does not end the
// user's sessions; the caller does.
func setPassword(ctx context.Context, db *pgxpool.Pool, email, password string, minLen int) (handlers.User, error) {
	if err := checkNewPassword(password, normaliseEmail(email), minLen); err != nil {
		return handlers.User{}, err
	}
	var u handlers.User
	err := db.QueryRow(ctx,
		"UPDATE users SET password_hash = $2, updated_at = now() WHERE lower(email) = $1 RETURNING id, email",
		normaliseEmail(email), hashPassword(password)).Scan(&u.ID, &u.Email)
	if errors.Is(err, pgx.ErrNoRows) {
		return handlers.User{}, fmt.Errorf("no user with email %s", normaliseEmail(email))
	}
	if err != nil {
		return handlers.User{}, fmt.Errorf("set password: %w", err)
	}
	return u, nil
}
