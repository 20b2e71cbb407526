package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/storage/users"
)

// Accounts are the account flows behind the defences of users.Gate; a *users.Gate is one. Their
// errors are those of users.Gate's methods of the same names, which UsersError maps.
type Accounts interface {
	Gate
	SignUp(ctx context.Context, a users.Attempt) (users.User, error)
	ChangePassword(ctx context.Context, a users.Attempt, newPassword string) (users.User, error)
	Delete(ctx context.Context, userID int64) error
}

// errWrongPassword answers a request of a logged-in user whose current password is wrong: 403,
// not 401, since the session itself is good.
var errWrongPassword = fiber.NewError(fiber.StatusForbidden, "wrong password")

// currentPassword maps the gate's error for a wrong current password to errWrongPassword.
func currentPassword(err error) error {
	if errors.Is(err, users.ErrBadCredentials) {
		return errWrongPassword
	}
	return err
}

// SignUp answers POST /signup with a JSON body {"email", "password"}: 201 with the new user as
// JSON, logged in (a session cookie and the device cookie); 409 for an email already taken (in
// any case, whatever the password: a sign-up never logs in to an account that exists), 422 for
// an email that is not one or a password the policy refuses (with the reason), 429 and 503 with
// Retry-After as for login, and the body errors of Login. Route it only when sign-up is on.
func SignUp(accounts Accounts, sessions Sessions, device DeviceCookie) fiber.Handler {
	return func(c *fiber.Ctx) error {
		a, err := credentials(c, device)
		if err != nil {
			return err
		}
		u, err := accounts.SignUp(c.UserContext(), a)
		if err != nil {
			return fmt.Errorf("sign-up: %w", err)
		}
		if err := sessions.Start(c, u); err != nil {
			return fmt.Errorf("sign-up: %w", err)
		}
		a.Email = u.Email
		device.set(c, accounts.Device(a))
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(fiber.StatusCreated).JSON(u)
	}
}

// SignUpOn answers GET /signup with 204: sign-up is on (a page asks before it offers it; with
// sign-up off the route is absent and the answer is 404).
func SignUpOn(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusNoContent) }

// ChangePassword answers POST /me/password with {"current_password", "new_password"}: 204, and
// every other session of the user ends on every instance while this one goes on under a new id;
// 403 for a wrong current password, 422 for a new one the policy refuses, 429 and 503 as for
// login, 400 for a malformed body. It goes behind the guard.
func ChangePassword(accounts Accounts, sessions Sessions, device DeviceCookie) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in struct {
			Current string `json:"current_password"`
			New     string `json:"new_password"`
		}
		if err := DecodeJSON(c, &in, MaxLoginBody); err != nil {
			return err
		}
		if in.Current == "" || in.New == "" {
			return fiber.NewError(fiber.StatusBadRequest, `body must be a JSON object {"current_password": "...", "new_password": "..."}`)
		}
		me := CurrentUser(c)
		a := users.Attempt{Email: me.Email, Password: in.Current, Address: c.IP(), Device: c.Cookies(device.Name)}
		u, err := accounts.ChangePassword(c.UserContext(), a, in.New)
		if err != nil {
			return fmt.Errorf("change password: %w", currentPassword(err))
		}
		// Every session ends, this one's included; then this browser continues in a new one.
		if err := sessions.EndAll(c, u); err != nil {
			return fmt.Errorf("change password: end sessions: %w", err)
		}
		if err := sessions.Start(c, u); err != nil {
			return fmt.Errorf("change password: %w", err)
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

// DeleteAccount answers DELETE /me with {"password"}: 204, the user and every session of theirs
// gone on every instance and the cookie cleared; 403 for a wrong password, 429 and 503 as for
// login, 400 for a malformed body. It goes behind the guard.
func DeleteAccount(accounts Accounts, sessions Sessions, device DeviceCookie) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var in struct {
			Password string `json:"password"`
		}
		if err := DecodeJSON(c, &in, MaxLoginBody); err != nil {
			return err
		}
		if in.Password == "" {
			return fiber.NewError(fiber.StatusBadRequest, `body must be a JSON object {"password": "..."}`)
		}
		me := CurrentUser(c)
		a := users.Attempt{Email: me.Email, Password: in.Password, Address: c.IP(), Device: c.Cookies(device.Name)}
		u, err := accounts.Check(c.UserContext(), a)
		if err != nil {
			return fmt.Errorf("delete account: %w", currentPassword(err))
		}
		// Sessions first: should the deletion fail, the account is still there to delete again.
		if err := sessions.EndAll(c, u); err != nil {
			return fmt.Errorf("delete account %d: end sessions: %w", u.ID, err)
		}
		if err := accounts.Delete(c.UserContext(), u.ID); err != nil {
			return err
		}
		// A login that raced the deletion may have started a session meanwhile.
		if err := sessions.EndAll(c, u); err != nil {
			return fmt.Errorf("delete account %d: end sessions: %w", u.ID, err)
		}
		c.ClearCookie(device.Name)
		return c.SendStatus(fiber.StatusNoContent)
	}
}
