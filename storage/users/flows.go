package users

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The account flows: every one that sets a password or rests on one goes through the gate.
// Each checks the password policy and hashes inside a hashing slot, so a client can make the
// server hash no faster than login lets it.

// SignUp creates the user of a's email and password and returns it. Its errors: one wrapping
// ErrInvalidEmail, a *WeakPasswordError (the policy, checked inside a hashing slot), ErrEmailTaken,
// a *ThrottledError or a *BusyError, or another when the database failed.
//
// An email that is taken, in any case, is refused whatever the password (sign-up never logs
// anyone in to an account that exists) and counts as a failure of the client's address prefix,
// as a wrong password at login does: a client learns at most as many taken emails as login
// lets it guess passwords, before its address is throttled. Taken or not, an attempt costs one
// hash, so the two take about the same time.
func (g *Gate) SignUp(ctx context.Context, a Attempt) (User, error) {
	email, err := checkNewEmail(a.Email)
	if err != nil {
		return User{}, err
	}
	addr := strings.Clone(a.Address)
	keys := []string{addressKey(addr, g.ipv4Bits, g.ipv6Bits)}
	release, err := g.enter(ctx, keys, false)
	if err != nil {
		g.logFlow(ctx, "signup", 0, addr, outcomeOf(err))
		return User{}, err
	}
	defer release()
	if err := checkPolicy(a.Password, email, g.minLen); err != nil {
		g.logFlow(ctx, "signup", 0, addr, "weak_password")
		return User{}, err
	}
	u := User{Email: email}
	qctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err = g.db.QueryRow(qctx, "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
		email, hashPassword(a.Password)).Scan(&u.ID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation: taken
		if _, err := g.throttle.fail(ctx, keys, 0); err != nil {
			return User{}, err
		}
		g.logFlow(ctx, "signup", 0, addr, "email_taken")
		return User{}, ErrEmailTaken
	}
	if err != nil {
		g.logFlow(ctx, "signup", 0, addr, "error")
		return User{}, fmt.Errorf("create user: %w", err)
	}
	g.logFlow(ctx, "signup", u.ID, addr, "success")
	return u, nil
}

// ChangePassword sets the password of the account of a, whose Password must be its current
// one (checked as Check does, with the same throttle), to newPassword, and returns the user. In
// the same statement it clears the account's throttle counts. Its errors: those of Check, a
// *WeakPasswordError, or another when the database failed. It ends no session; the caller
// ends the user's other sessions.
func (g *Gate) ChangePassword(ctx context.Context, a Attempt, newPassword string) (User, error) {
	u, err := g.Check(ctx, a)
	if err != nil {
		return User{}, err
	}
	_, known := g.deviceID(u.Email, a.Device)
	release, err := g.enter(ctx, nil, known)
	if err != nil {
		return User{}, err
	}
	defer release()
	if err := checkPolicy(newPassword, u.Email, g.minLen); err != nil {
		return User{}, err
	}
	qctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	u, err = setPasswordHash(qctx, g.db, "id", u.ID, hashPassword(newPassword))
	if err != nil {
		return User{}, err
	}
	g.logFlow(ctx, "password_change", u.ID, a.Address, "success")
	return u, nil
}

// Delete deletes the user userID and their throttle counts. It checks nothing: an endpoint
// that lets a user delete their account checks the password with Check first, and ends the
// user's sessions before and after (a login racing the deletion may have started one).
func (g *Gate) Delete(ctx context.Context, userID int64) error {
	qctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	_, err := g.db.Exec(qctx, `
		WITH gone AS (DELETE FROM users WHERE id = $1 RETURNING id)
		DELETE FROM login_failures WHERE user_id = (SELECT id FROM gone)`, userID)
	if err != nil {
		return fmt.Errorf("delete user %d: %w", userID, err)
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "account_delete", slog.String("outcome", "success"), slog.Int64("user", userID))
	return nil
}

// enter passes the throttle on keys (none: no throttle) and takes a hashing slot, as Check
// does before it hashes, and returns the function that gives the slot back.
func (g *Gate) enter(ctx context.Context, keys []string, device bool) (release func(), err error) {
	deadline := time.Now().Add(g.hashWait)
	if len(keys) > 0 {
		if st, err := g.throttle.check(ctx, keys); err != nil {
			return nil, err
		} else if st.wait > 0 {
			return nil, &ThrottledError{RetryAfter: st.wait}
		}
	}
	release, waited, err := g.slot(ctx, device, deadline)
	if err != nil {
		return nil, err
	}
	if waited && len(keys) > 0 {
		st, err := g.throttle.check(ctx, keys)
		if err == nil && st.wait > 0 {
			err = &ThrottledError{RetryAfter: st.wait}
		}
		if err != nil {
			release()
			return nil, err
		}
	}
	return release, nil
}

// outcomeOf is the log outcome of an error of enter.
func outcomeOf(err error) string {
	switch {
	case errors.As(err, new(*ThrottledError)):
		return "throttled"
	case errors.As(err, new(*BusyError)):
		return "busy"
	}
	return "error"
}

// logFlow writes the security log line of an account flow: what it was, the user's id (0 for
// none), the client address and the outcome. Never an email or a password.
func (g *Gate) logFlow(ctx context.Context, flow string, userID int64, addr, outcome string) {
	level := slog.LevelInfo
	if outcome != "success" {
		level = slog.LevelWarn
	}
	g.log.LogAttrs(ctx, level, flow, slog.String("outcome", outcome), slog.Int64("user", userID),
		slog.String("client", strings.Clone(addr)))
}

// setPasswordHash stores hash as the password of the user whose column (id or email) is
// value and clears the throttle's counts on the account and its devices, in one statement,
// and returns the user.
func setPasswordHash(ctx context.Context, db querier, column string, value any, hash string) (User, error) {
	where := "id = $1"
	if column == "email" {
		where = "lower(email) = $1"
	}
	var u User
	err := db.QueryRow(ctx, `
		WITH u AS (
			UPDATE users SET password_hash = $2, updated_at = now() WHERE `+where+` RETURNING id, email
		), cleared AS (
			DELETE FROM login_failures WHERE user_id = (SELECT id FROM u)
		)
		SELECT id, email FROM u`, value, hash).Scan(&u.ID, &u.Email)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, errNoUser
	}
	if err != nil {
		return User{}, fmt.Errorf("set password: %w", err)
	}
	return u, nil
}

// errNoUser is setPasswordHash's error when no user matched.
var errNoUser = errors.New("users: no such user")

// querier is what setPasswordHash needs of a pool.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
