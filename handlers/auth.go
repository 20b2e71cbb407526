package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/storage/users"
)

// MaxLoginBody is the largest /login body accepted, far above any real email and password.
// Larger bodies get 413 before any parsing or hashing.
const MaxLoginBody = 4 << 10

// Gate checks passwords behind the defences of users.Gate; a *users.Gate is one.
type Gate interface {
	// Check returns the user whose email and password the attempt carries. Its errors are
	// those of users.Gate.Check: users.ErrBadCredentials, a *users.ThrottledError or a
	// *users.BusyError, or another when the check itself failed.
	Check(ctx context.Context, a users.Attempt) (users.User, error)
	// Device returns the device cookie for the client of a successful attempt.
	Device(a users.Attempt) string
}

// DeviceCookie names the cookie that tells a browser that logged in to an account before from
// a stranger (users.Gate): it is HttpOnly, SameSite=Lax, for path /, Secure when Secure, and
// lasts DeviceLifetime.
type DeviceCookie struct {
	Name   string
	Secure bool
}

// set gives c's client the device cookie value.
func (d DeviceCookie) set(c *fiber.Ctx, value string) {
	c.Cookie(&fiber.Cookie{
		Name:     d.Name,
		Value:    value,
		Path:     "/",
		MaxAge:   int(DeviceLifetime / time.Second),
		Secure:   d.Secure,
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// DeviceLifetime is how long a browser keeps a device cookie after its latest login: about
// the longest a browser keeps any cookie (400 days in Chrome).
const DeviceLifetime = 365 * 24 * time.Hour

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
)

// UsersError returns the *fiber.Error that an error of the users package stands for, and sets
// Retry-After (whole seconds, at least 1) on c's response for those that have one; nil for any
// other error. app's error handler calls it, so that a handler just returns what users
// returned: users.ErrBadCredentials is 401, users.ErrEmailTaken 409, users.ErrInvalidEmail and
// *users.WeakPasswordError 422 (with the reason), *users.ThrottledError 429 and
// *users.BusyError 503.
func UsersError(c *fiber.Ctx, err error) *fiber.Error {
	var (
		throttled *users.ThrottledError
		busy      *users.BusyError
		weak      *users.WeakPasswordError
	)
	switch {
	case errors.Is(err, users.ErrBadCredentials):
		return errBadCredentials
	case errors.Is(err, users.ErrEmailTaken):
		return fiber.NewError(fiber.StatusConflict, "a user with this email already exists")
	case errors.Is(err, users.ErrInvalidEmail):
		return fiber.NewError(fiber.StatusUnprocessableEntity, "not an email address like name@example.com")
	case errors.As(err, &weak):
		return fiber.NewError(fiber.StatusUnprocessableEntity, weak.Reason)
	case errors.As(err, &throttled):
		setRetryAfter(c, throttled.RetryAfter)
		return fiber.NewError(fiber.StatusTooManyRequests, "too many failed attempts; try again later")
	case errors.As(err, &busy):
		setRetryAfter(c, busy.RetryAfter)
		return fiber.NewError(fiber.StatusServiceUnavailable, "too busy; try again shortly")
	}
	return nil
}

func setRetryAfter(c *fiber.Ctx, d time.Duration) {
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// credentials decodes a {"email", "password"} body (DecodeJSON's rules, at most MaxLoginBody)
// into the gate's attempt, with the client address and the device cookie the browser sent.
func credentials(c *fiber.Ctx, device DeviceCookie) (users.Attempt, error) {
	var in loginRequest
	if err := DecodeJSON(c, &in, MaxLoginBody); err != nil {
		return users.Attempt{}, err
	}
	if in.Email == "" || in.Password == "" {
		return users.Attempt{}, errLoginBody
	}
	return users.Attempt{Email: in.Email, Password: in.Password, Address: c.IP(), Device: c.Cookies(device.Name)}, nil
}

// Login answers POST /login with a JSON body {"email", "password"}: 200 with the user as JSON,
// a new session cookie and the device cookie (device), 401 for bad credentials, 400 for a
// malformed body (DecodeJSON's rules), 413 for one over MaxLoginBody, 415 for one that is not
// JSON, 429 (too many failed attempts) or 503 (no time to check a password now) with
// Retry-After (see UsersError). The attempt is the gate's, with the client address c.IP(),
// which is the connection's unless the server trusts the peer as a proxy (Fiber's
// TrustedProxies), and the device cookie the browser sent.
//
// Requiring the JSON content type is what keeps another site from logging a visitor in to the
// attacker's account: a cross-site form cannot send it, and a cross-site fetch that does needs a
// CORS preflight this server never grants.
func Login(gate Gate, sessions Sessions, device DeviceCookie) fiber.Handler {
	return func(c *fiber.Ctx) error {
		a, err := credentials(c, device)
		if err != nil {
			return err
		}
		u, err := gate.Check(c.UserContext(), a)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		if err := sessions.Start(c, u); err != nil {
			return fmt.Errorf("login: %w", err)
		}
		device.set(c, gate.Device(a))
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(u)
	}
}

// Me answers GET /me with the current user as JSON. It goes behind the guard.
func Me(c *fiber.Ctx) error {
	return c.JSON(CurrentUser(c)) // Cache-Control: no-store, as every answer behind the guard
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
