package users

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgfault"
)

// Gate is the one way in to a password: every endpoint that checks one (login; tomorrow the
// current password of a change or a deletion) calls Check, and gets the same defences. It is
// safe for concurrent use.
//
// Checking a password costs an argon2id hash (tens of milliseconds of one core, 19 MiB), so an
// attempt goes through three steps before it may cost one, in this order:
//
//  1. the throttle (Throttle), before any waiting. An attempt that carries a valid device
//     cookie for its account (Device) is counted on that device alone, so strangers' failures
//     never throttle a browser that logged in before; any other is counted on the account (for
//     clients without one) and on its client address prefix;
//  2. a hashing slot: at most Config.HashSlots hashes of strangers run at once, plus one slot
//     kept for known devices, so that a flood of strangers cannot starve them. An attempt waits
//     at most Config.HashWait for one (its deadline) before it is refused (*BusyError);
//  3. the throttle again, once the slot is held, if the attempt had to wait for it: failures
//     recorded while it waited count.
//
// fasthttp never tells a handler that its client has gone, so these bounds are what keeps
// abandoned logins from queueing up hashes: an attempt whose deadline passed is never hashed.
type Gate struct {
	db        *pgxpool.Pool
	timeout   time.Duration
	throttle  *Throttle
	slots     chan struct{} // any attempt's
	known     chan struct{} // known devices' only
	hashWait  time.Duration
	minLen    int // Config.PasswordMinLength, for the passwords SignUp and ChangePassword set
	ipv4Bits  int
	ipv6Bits  int
	log       *slog.Logger
	onAttempt func(outcome string) // nil: nothing is told
	dummy     string               // checked for unknown emails (dummyHash)
	tagKey    []byte               // keys emailTag: random per process
	acctKey   []byte               // keys accountKey: the same on every instance
	deviceKey []byte               // signs device cookies: the same on every instance
}

// NewGate returns the Gate over db with the settings of cfg. key is the deployment's secret,
// the same on every instance and at least 32 bytes (the session-signing key): the gate derives
// from it the keys of its throttle rows and of its device cookies, so that neither can be
// made by someone who can only read the database. timeout is the deadline of each statement;
// now is the throttle's clock; log receives the security log line of each attempt; onAttempt,
// unless nil, is called with each attempt's outcome (success, failure, throttled, busy or
// error), for monitoring. It hashes once, to have the dummy hash of unknown emails ready.
func NewGate(db *pgxpool.Pool, cfg Config, key []byte, timeout time.Duration, now func() time.Time, log *slog.Logger, onAttempt func(outcome string)) *Gate {
	return &Gate{
		db:        db,
		timeout:   timeout,
		throttle:  NewThrottle(db, cfg, timeout, now),
		slots:     make(chan struct{}, cfg.HashSlots),
		known:     make(chan struct{}, 1),
		hashWait:  cfg.HashWait,
		minLen:    cfg.PasswordMinLength,
		ipv4Bits:  cfg.IPv4Prefix,
		ipv6Bits:  cfg.IPv6Prefix,
		log:       log,
		onAttempt: onAttempt,
		dummy:     dummyHash(),
		tagKey:    []byte(rand.Text()),
		acctKey:   derive(key, "login_failures account key"),
		deviceKey: derive(key, "device cookie"),
	}
}

// derive is the key for one use of the secret key.
func derive(key []byte, use string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("users: " + use))
	return m.Sum(nil)
}

// Attempt is one try at the password of an account, as a client sent it.
type Attempt struct {
	Email    string // as typed: the gate normalises it
	Password string
	Address  string // the client's IP address, counted per prefix (Config.IPv4Prefix, IPv6Prefix)
	Device   string // the device cookie the client sent (Device made it), "" for none
}

// ErrBadCredentials is the error of an attempt whose email is no user's or whose password is
// wrong: the two look alike, in the answer and in its timing.
var ErrBadCredentials = errors.New("users: invalid email or password")

// ThrottledError is the error of an attempt refused, unchecked, because of too many failed
// attempts on its account or device or from its address prefix.
type ThrottledError struct {
	RetryAfter time.Duration // when the client may try again
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("users: too many failed attempts; retry after %v", e.RetryAfter)
}

// BusyError is the error of an attempt refused, unchecked, because no hashing slot freed up
// within Config.HashWait.
type BusyError struct {
	RetryAfter time.Duration // when the client may try again
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("users: too busy to check a password; retry after %v", e.RetryAfter)
}

// dummyHash is checked for unknown emails so that they cost the same time as a wrong password.
// It is made with the current parameters, so the two paths stay alike when those change.
func dummyHash() string { return hashPassword(rand.Text()) }

// retryBusy is the Retry-After of an attempt refused for want of a hashing slot.
const retryBusy = time.Second

// accountKey is the throttle key of the account with this normalised email: a keyed hash, so
// that the emails that strangers type, existing or not, are not kept in clear, and so that
// reading the table does not confirm a guessed email.
func (g *Gate) accountKey(email string) string {
	m := hmac.New(sha256.New, g.acctKey)
	m.Write([]byte(email))
	return accountPrefix + hex.EncodeToString(m.Sum(nil)[:16])
}

// Device cookies: a random id (26 base32 characters, crypto/rand.Text) and 26 more encoding
// the first 128 bits of HMAC-SHA256, under the gate's device key, of the account's email and
// the id. The id is the throttle key of the device; the MAC binds it to one account, and only
// a holder of the key can make one (OWASP's "device cookie").
const (
	deviceIDLen  = 26
	deviceMACLen = 26
)

var deviceEncoding = base32.StdEncoding.WithPadding(base32.NoPadding) // rand.Text's alphabet

func (g *Gate) deviceMAC(email, id string) string {
	m := hmac.New(sha256.New, g.deviceKey)
	m.Write([]byte(email))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return deviceEncoding.EncodeToString(m.Sum(nil)[:16])
}

// deviceID returns the id of cookie when it is a device cookie of the account with this
// normalised email, or "" and false.
func (g *Gate) deviceID(email, cookie string) (string, bool) {
	if len(cookie) != deviceIDLen+deviceMACLen {
		return "", false
	}
	for i := 0; i < len(cookie); i++ {
		if c := cookie[i]; !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return "", false
		}
	}
	id := cookie[:deviceIDLen]
	if !hmac.Equal([]byte(cookie[deviceIDLen:]), []byte(g.deviceMAC(email, id))) {
		return "", false
	}
	return id, true
}

// Device returns the device cookie to give the client of a successful attempt: the one it
// sent when that is valid for the attempt's account, else a new one. A client that sends it
// with its next attempts on the account is judged on its own failures (see Gate).
func (g *Gate) Device(a Attempt) string {
	email := normaliseEmail(a.Email)
	if _, ok := g.deviceID(email, a.Device); ok {
		return strings.Clone(a.Device)
	}
	id := rand.Text()
	return id + g.deviceMAC(email, id)
}

// Check returns the user whose email and password a carries. For an unknown email and for a
// wrong password alike it returns ErrBadCredentials, after about the same time (a hash is
// checked either way), so that neither the answer nor its timing tells which emails exist. It
// returns a *ThrottledError or a *BusyError, without checking the password, when the attempt is
// throttled or no hashing slot freed up within Config.HashWait of the call. Any other error
// means the check itself failed (the database is down, say). It writes one log line per
// attempt (logAttempt), except for attempts refused by a throttle this instance already
// logged once: one line per key per throttle.
func (g *Gate) Check(ctx context.Context, a Attempt) (User, error) {
	deadline := time.Now().Add(g.hashWait)
	email := normaliseEmail(a.Email)
	addr := strings.Clone(a.Address) // may share a buffer its caller reuses (Fiber's do)
	var keys []string
	id, known := g.deviceID(email, a.Device)
	if known {
		keys = []string{devicePrefix + id} // a new string: id points into a.Device
	} else {
		keys = []string{g.accountKey(email), addressKey(addr, g.ipv4Bits, g.ipv6Bits)}
	}
	u, outcome, err := g.check(ctx, email, a.Password, keys, known, deadline)
	if outcome != "" {
		g.logAttempt(ctx, u.ID, email, addr, known, outcome)
	} else if g.onAttempt != nil {
		g.onAttempt("throttled") // refused by a throttle already logged
	}
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// check does the work of Check and returns the outcome it logs: success, failure, throttled,
// busy (no slot in time) or error; "" for a throttled attempt that needs no line. u.ID is set
// whenever the email is known.
func (g *Gate) check(ctx context.Context, email, password string, keys []string, device bool, deadline time.Time) (u User, outcome string, err error) {
	// The throttle this instance knows of first: a throttled attempt costs no statement.
	st, err := g.throttle.check(ctx, keys)
	if err != nil {
		return u, "error", err
	}
	if st.wait > 0 && st.known {
		return u, throttled(st), &ThrottledError{RetryAfter: st.wait}
	}
	qctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var hash string
	err = pgfault.Retry(qctx, g.db, func(q pgfault.Querier) error {
		return q.QueryRow(qctx, "SELECT id, email, password_hash FROM users WHERE lower(email) = $1",
			email).Scan(&u.ID, &u.Email, &hash)
	})
	known := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		hash = g.dummy
	} else if err != nil {
		return u, "error", fmt.Errorf("find user: %w", err)
	}
	if st.wait > 0 { // found by the read: this attempt's line is the throttle's one, unless a concurrent one logged it
		return u, throttled(st), &ThrottledError{RetryAfter: st.wait}
	}

	release, waited, err := g.slot(ctx, device, deadline)
	if err != nil {
		if errors.As(err, new(*BusyError)) {
			return u, "busy", err
		}
		return u, "error", err
	}
	defer release()
	// Failures recorded while the attempt waited count. One that got its slot at once has
	// nothing new to see: microseconds passed since the first check.
	if waited {
		if st, err = g.throttle.check(ctx, keys); err != nil {
			return u, "error", err
		}
		if st.wait > 0 {
			return u, throttled(st), &ThrottledError{RetryAfter: st.wait}
		}
	}
	ok, err := checkPassword(hash, password)
	if err != nil {
		return u, "error", fmt.Errorf("check password of user %d: %w", u.ID, err)
	}
	if !ok || !known {
		if _, err := g.throttle.fail(ctx, keys, u.ID); err != nil {
			return u, "error", err
		}
		return u, "failure", ErrBadCredentials
	}
	if st.counted {
		if err := g.throttle.clear(ctx, keys[0]); err != nil {
			return u, "error", err
		}
	}
	return u, "success", nil
}

// throttled is the outcome of an attempt refused by the throttle st: "throttled", or "" when
// this instance has logged that throttle once already.
func throttled(st throttleState) string {
	if st.known && st.logged {
		return ""
	}
	return "throttled"
}

// slot waits for a hashing slot until deadline and returns the function that gives it back,
// and whether it had to wait. A known device may take the slot kept for known devices as well
// as any other. It returns a *BusyError when none freed up in time, ctx's error when ctx ended.
func (g *Gate) slot(ctx context.Context, device bool, deadline time.Time) (release func(), waited bool, err error) {
	var known chan struct{} // nil, and so never ready, unless device
	if device {
		known = g.known
	}
	select { // a slot at once, the usual case
	case g.slots <- struct{}{}:
		return func() { <-g.slots }, false, nil
	case known <- struct{}{}:
		return func() { <-g.known }, false, nil
	default:
	}
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	select {
	case g.slots <- struct{}{}:
		release = func() { <-g.slots }
	case known <- struct{}{}:
		release = func() { <-g.known }
	case <-wait.C:
		return nil, true, &BusyError{RetryAfter: retryBusy}
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
	if !time.Now().Before(deadline) { // the slot and the deadline came together
		release()
		return nil, true, &BusyError{RetryAfter: retryBusy}
	}
	return release, true, nil
}

// logAttempt writes the security log line of one attempt: the user's id, or for an unknown
// email (or a throttled attempt refused before the user was read) its emailTag, the client
// address, whether it came from a known device, and the outcome. Never the email, the password,
// the device cookie or anything of the session. It also tells onAttempt.
func (g *Gate) logAttempt(ctx context.Context, userID int64, email, addr string, device bool, outcome string) {
	if g.onAttempt != nil {
		g.onAttempt(outcome)
	}
	who := slog.Int64("user", userID)
	if userID == 0 {
		who = slog.String("email_tag", g.emailTag(email))
	}
	level := slog.LevelInfo
	if outcome != "success" {
		level = slog.LevelWarn
	}
	g.log.LogAttrs(ctx, level, "login", slog.String("outcome", outcome), who,
		slog.String("client", addr), slog.Bool("known_device", device))
}

// emailTag is a short keyed hash of an email that matches no account: the same email gives the
// same tag in this instance's log, so that a run of attempts on it can be followed, but the
// key is random per process, so a list of emails cannot be hashed to find who was tried.
func (g *Gate) emailTag(email string) string {
	m := hmac.New(sha256.New, g.tagKey)
	m.Write([]byte(email))
	return hex.EncodeToString(m.Sum(nil)[:6])
}
