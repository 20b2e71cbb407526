package handlers

import (
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Session is one of a user's live sessions, as GET /sessions lists it.
type Session struct {
	// ID names the session to its owner, for DELETE /sessions/{id}. It is neither the cookie
	// nor anything the cookie can be recovered from: knowing it lets its owner end the session,
	// never use it.
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`    // the login
	LastUsed  time.Time `json:"last_used"`  // to within the touch interval; see app's List
	UserAgent string    `json:"user_agent"` // at login, cut short
	Address   string    `json:"address"`    // the client address at login
	Current   bool      `json:"current"`    // the session of the request that asked
}

var errNoSession = fiber.NewError(fiber.StatusNotFound, "no such session")

// ListSessions answers GET /sessions with the current user's live sessions as a JSON array,
// newest first, the request's own marked "current". It goes behind the guard.
func ListSessions(sessions Sessions) fiber.Handler {
	return func(c *fiber.Ctx) error {
		list, err := sessions.List(c, CurrentUser(c))
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		if list == nil {
			list = []Session{} // [], not null
		}
		return c.JSON(list)
	}
}

// EndSession answers DELETE /sessions/{id} with 204: the current user's session id is over on
// every instance. An id that is not one of the user's live sessions, whoever it belongs to,
// gets 404 and ends nothing. Ending the request's own session is a logout: its cookie is
// cleared. It goes behind the guard.
func EndSession(sessions Sessions) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ended, err := sessions.EndOne(c, CurrentUser(c), c.Params("id"))
		if err != nil {
			return fmt.Errorf("end session: %w", err)
		}
		if !ended {
			return errNoSession
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}
