package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/app/users"
)

// MaxLoginBody is the largest /login body accepted, far above any real email and password.
// Larger bodies get 413 before any parsing or hashing.
const MaxLoginBody = 4 << 10

// Accounts checks credentials.
type Accounts interface {
	// Authenticate returns the user whose email and password these are, for a login attempt
	// from the client address addr. For an unknown email and for a wrong password alike it
	// returns ok false and a nil error, after about the same time, so that neither the answer
	// nor its timing tells which emails exist. It returns a *users.TryLater, without checking
	// the password, when the attempt is throttled or the server is too busy to check it in time.
	// Any other error means the check itself failed (the database is down, say).
	Authenticate(ctx context.Context, email, password, addr string) (u users.User, ok bool, err error)
}

// Sessions starts and ends login sessions. Each method sets or clears the session cookie on c's
// response.
type Sessions interface {
	// Start ends any session the request carries and starts a new one for u, under a new id.
	Start(c *fiber.Ctx, u users.User) error
	// End ends the request's session on every instance.
	End(c *fiber.Ctx) error
	// EndAll ends every session of u on every instance, the request's own included.
	EndAll(c *fiber.Ctx, u users.User) error
	// List returns u's live sessions, newest first, the request's own marked Current.
	List(c *fiber.Ctx, u users.User) ([]Session, error)
	// EndOne ends u's live session whose Session.ID is id on every instance, and reports
	// whether there was one; it ends nothing for an id of anybody else's session. Ending the
	// request's own session clears its cookie, as End does.
	EndOne(c *fiber.Ctx, u users.User, id string) (bool, error)
}

var (
	errBadCredentials = fiber.NewError(fiber.StatusUnauthorized, "invalid email or password")
	errLoginBody      = fiber.NewError(fiber.StatusBadRequest, `body must be a JSON object {"email": "...", "password": "..."}`)
	errThrottled      = fiber.NewError(fiber.StatusTooManyRequests, "too many failed logins; try again later")
	errBusy           = fiber.NewError(fiber.StatusServiceUnavailable, "too busy; try again shortly")
)

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Login answers POST /login with a JSON body {"email", "password"}: 200 with the user as JSON
// and a new session cookie, 401 for bad credentials, 400 for a malformed body (DecodeJSON's
// rules), 413 for one over MaxLoginBody, 415 for one that is not JSON, 429 (too many failed
// logins) or 503 (no time to check a password now) with Retry-After (a *users.TryLater's After
// in whole seconds, at least 1). The client address is c.IP(), which is the connection's unless
// the server trusts the peer as a proxy (Fiber's TrustedProxies).
//
// Requiring the JSON content type is what keeps another site from logging a visitor in to the
// attacker's account: a cross-site form cannot send it, and a cross-site fetch that does needs a
// CORS preflight this server never grants.
func Login(accounts Accounts, sessions Sessions) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in loginRequest
		if err := DecodeJSON(c, &in, MaxLoginBody); err != nil {
			return err
		}
		if in.Email == "" || in.Password == "" {
			return errLoginBody
		}
		u, ok, err := accounts.Authenticate(c.UserContext(), in.Email, in.Password, c.IP())
		var later *users.TryLater
		if errors.As(err, &later) {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(1, int(math.Ceil(later.After.Seconds())))))
			if later.Throttled {
				return errThrottled
			}
			return errBusy
		}
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		if !ok {
			return errBadCredentials
		}
		if err := sessions.Start(c, u); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(u)
	}
}

// Me answers GET /me with the current user as JSON. It goes behind the guard.
func Me(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(CurrentUser(c))
}

// Logout answers POST /logout with 204: the session is over on every instance and its cookie
// cleared. It goes behind the guard.
func Logout(sessions Sessions) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := sessions.End(c); err != nil {
			return fmt.Errorf("logout: %w", err)
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// LogoutAll answers POST /logout/all with 204: every session of the current user is over on
// every instance, this one's included. It goes behind the guard.
func LogoutAll(sessions Sessions) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := sessions.EndAll(c, CurrentUser(c)); err != nil {
			return fmt.Errorf("logout everywhere: %w", err)
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}
