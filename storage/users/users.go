// Package users is the home of the users table and of credentials: creating users and setting
// their passwords under one password policy, hashing with argon2id, and checking a password
// (Gate) behind a throttle of failed attempts and a bound on hashing. It knows nothing of HTTP
// or of sessions: app wires it to the login endpoint and to the user commands of the CLI.
//
// Its errors are typed, so that an endpoint maps them without reading messages:
// ErrBadCredentials, ErrEmailTaken, ErrInvalidEmail, *WeakPasswordError, *ThrottledError and
// *BusyError (both with a RetryAfter).
package users

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// User is a user as the rest of the program knows it: what the session remembers and what
// /login and /me return. ID is never 0 for a real user.
type User struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

// Config is the package's settings; app fills it from the environment variables named below.
// Start from DefaultConfig. app's LoadConfig rejects values out of range; NewGate and
// NewThrottle assume it did.
type Config struct {
	PasswordMinLength int           // fewest characters a new password may have, 8 to MaxPasswordMinLength
	HashSlots         int           // LOGIN_HASH_SLOTS: password checks that may run at once, at least 1
	HashWait          time.Duration // longest a login waits for a hashing slot before it is refused
	AccountFailures   int           // LOGIN_ACCOUNT_FAILURES: failed logins per account before it is throttled
	AddressFailures   int           // LOGIN_ADDRESS_FAILURES: failed logins per client address before it is throttled
	FailureWindow     time.Duration // a count is forgotten this long after its latest failure
	Lockout           time.Duration // first throttle once a count reaches its limit; doubles per further failure
	LockoutMax        time.Duration // longest throttle, from Lockout to FailureWindow
	HardLimit         int           // LOGIN_HARD_LIMIT: consecutive failures since the last success after which an account takes known devices only, 1 to MaxHardLimit
	IPv4Prefix        int           // LOGIN_IPV4_PREFIX: bits of an IPv4 client address that count as one client, 8 to 32
	IPv6Prefix        int           // LOGIN_IPV6_PREFIX: bits of an IPv6 client address that count as one client, 32 to 128
}

// MaxHardLimit is the highest Config.HardLimit: NIST SP 800-63B allows no more than 100
// consecutive failed attempts on an account.
const MaxHardLimit = 100

// DefaultConfig returns the defaults: passwords of at least 15 characters (NIST SP 800-63B-4
// for a password used alone); 2 hashing slots and a wait of 500 ms for one; throttling after 5
// failures on an account or device, or 30 from an address (an IPv4 address or an IPv6 /64), for
// 1 minute doubling up to 15, forgotten 15 minutes after a throttle ends; known devices only
// after 100 consecutive failures.
func DefaultConfig() Config {
	return Config{
		PasswordMinLength: 15,
		HashSlots:         2,
		HashWait:          500 * time.Millisecond,
		AccountFailures:   5,
		AddressFailures:   30,
		FailureWindow:     15 * time.Minute,
		Lockout:           time.Minute,
		LockoutMax:        15 * time.Minute,
		HardLimit:         MaxHardLimit,
		IPv4Prefix:        32,
		IPv6Prefix:        64,
	}
}

// ErrEmailTaken is the error of creating a user with an email that is already a user's, in
// any case.
var ErrEmailTaken = errors.New("users: email already taken")

// ErrInvalidEmail is wrapped by the error of an email that cannot be an account's; the
// wrapping error says why, for the person who typed it.
var ErrInvalidEmail = errors.New("users: invalid email")

// WeakPasswordError is the error of a new password that the password policy refuses. Reason
// says why, for the person choosing it.
type WeakPasswordError struct {
	Reason string
}

func (e *WeakPasswordError) Error() string { return "users: weak password: " + e.Reason }

// checkPolicy is checkNewPassword's verdict as a *WeakPasswordError.
func checkPolicy(password, email string, minLen int) error {
	if err := checkNewPassword(password, email, minLen); err != nil {
		return &WeakPasswordError{Reason: err.Error()}
	}
	return nil
}

// normaliseEmail is the form emails are stored and looked up in: trimmed and lower case. A
// statement that finds a user by email compares lower(email) with it.
func normaliseEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// checkNewEmail returns email normalised, or an error saying why it cannot be an account's
// email: it must be a bare address (no display name), at most 254 bytes.
func checkNewEmail(email string) (string, error) {
	email = normaliseEmail(email)
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" || len(email) > 254 {
		return "", fmt.Errorf("%w: %q is not an email address like name@example.com", ErrInvalidEmail, email)
	}
	return email, nil
}

// Store is the users table for the user commands of the CLI: creating users and setting their
// passwords under the password policy. It is safe for concurrent use. It hashes without a
// hashing slot: an endpoint that lets a client create users or set passwords goes through the
// Gate (SignUp, ChangePassword) instead, which bounds that.
type Store struct {
	DB      *pgxpool.Pool
	Timeout time.Duration // deadline of each statement
}

// Create adds a user with this email and password and returns it. The email must be a new,
// bare address and the password follow the password policy with at least minLen characters
// (see checkNewPassword). Its errors: one wrapping ErrInvalidEmail, a *WeakPasswordError,
// ErrEmailTaken, or another for a failure of the database. It hashes without a slot: an endpoint
// that lets a client create users must bound that, as the Gate does for checks.
func (s Store) Create(ctx context.Context, email, password string, minLen int) (User, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	email, err := checkNewEmail(email)
	if err != nil {
		return User{}, err
	}
	if err := checkPolicy(password, email, minLen); err != nil {
		return User{}, err
	}
	u := User{Email: email}
	err = s.DB.QueryRow(ctx, "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
		email, hashPassword(password)).Scan(&u.ID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return User{}, fmt.Errorf("%w: a user with email %s already exists", ErrEmailTaken, email)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// SetPassword replaces the password of the user with this email and returns the user. The
// password must follow the password policy with at least minLen characters, as for Create (a
// *WeakPasswordError otherwise). In the same statement it clears the throttle's counts on the
// account and its devices (Throttle): a new password ends a hard limit's lockout. It does not
// end the user's sessions; the caller does.
func (s Store) SetPassword(ctx context.Context, email, password string, minLen int) (User, error) {
	if err := checkPolicy(password, normaliseEmail(email), minLen); err != nil {
		return User{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	u, err := setPasswordHash(ctx, s.DB, "email", normaliseEmail(email), hashPassword(password))
	if errors.Is(err, errNoUser) {
		return User{}, fmt.Errorf("no user with email %s", normaliseEmail(email))
	}
	return u, err
}
