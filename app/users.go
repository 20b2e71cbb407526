package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/handlers"
)

// The users table (migrations/0002) belongs to app rather than handlers because both the login
// endpoint and the user commands of the CLI use it.

// accounts checks credentials against the users table. It is safe for concurrent use.
type accounts struct {
	db      *pgxpool.Pool
	timeout time.Duration
	// slots bounds the password checks running at once: argon2id is CPU-bound, so more checks
	// than cores only add memory (19 MiB each) and latency.
	slots chan struct{}
}

var _ handlers.Accounts = (*accounts)(nil)

func newAccounts(db *pgxpool.Pool, timeout time.Duration) *accounts {
	return &accounts{db: db, timeout: timeout, slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
}

// dummyHash is checked for unknown emails so that they cost the same time as a wrong password.
// It is made with the current parameters, so the two paths stay alike when those change.
var dummyHash = sync.OnceValue(func() string { return hashPassword(rand.Text()) })

// Authenticate implements handlers.Accounts.
func (a *accounts) Authenticate(ctx context.Context, email, password string) (handlers.User, bool, error) {
	qctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var (
		u    handlers.User
		hash string
	)
	err := a.db.QueryRow(qctx, "SELECT id, email, password_hash FROM users WHERE lower(email) = $1",
		normaliseEmail(email)).Scan(&u.ID, &u.Email, &hash)
	known := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		hash = dummyHash()
	} else if err != nil {
		return handlers.User{}, false, fmt.Errorf("find user: %w", err)
	}

	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return handlers.User{}, false, ctx.Err()
	}
	ok, err := checkPassword(hash, password)
	<-a.slots
	if err != nil {
		return handlers.User{}, false, fmt.Errorf("check password of user %d: %w", u.ID, err)
	}
	if !ok || !known {
		return handlers.User{}, false, nil
	}
	return u, true, nil
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

// createUser adds a user with this email and password and returns it. The email must be new.
func createUser(ctx context.Context, db *pgxpool.Pool, email, password string) (handlers.User, error) {
	email, err := checkNewEmail(email)
	if err != nil {
		return handlers.User{}, err
	}
	if err := checkNewPassword(password); err != nil {
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

// setPassword replaces the password of the user with this email and returns the user. It does
// not end the user's sessions; the caller does.
func setPassword(ctx context.Context, db *pgxpool.Pool, email, password string) (handlers.User, error) {
	if err := checkNewPassword(password); err != nil {
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
