package app

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage/users"
)

// A user's list of sessions (GET /sessions, DELETE /sessions/{id}). The store files each
// session under its user as it is written at login (sessionOwner); what the list shows comes
// from the session's own value (login time, user agent, address) and its row's expiry (last
// use), so listing adds no write to any request.

// maxUserAgent is the most bytes of a User-Agent header kept with a session: enough to tell
// browsers and devices apart.
const maxUserAgent = 256

// userAgent returns ua without invalid UTF-8 or unprintable characters (nothing a page or a log
// line could be tricked by), cut to at most maxUserAgent bytes on a character boundary.
func userAgent(ua string) string {
	var b strings.Builder
	for _, r := range ua {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxUserAgent {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// List implements handlers.Sessions with one query. A session past its absolute lifetime,
// which the guard refuses, is left out even while its row lives.
//
// A session's last use is when its expiry last moved: the row's expiry less the idle timeout.
// It is exact to within the touch interval, except that once the expiry has reached the
// absolute lifetime it no longer moves: the session was used at that time or later.
func (s *sessions) List(c *fiber.Ctx, u users.User) ([]handlers.Session, error) {
	rows, err := s.store.Owned(c.UserContext(), owner(u.ID), c.Cookies(s.cookie))
	if err != nil {
		return nil, fmt.Errorf("sessions of user %d: %w", u.ID, err)
	}
	now := s.now()
	list := make([]handlers.Session, 0, len(rows))
	for _, r := range rows {
		m, err := sessionMap(r.Value)
		if err != nil {
			return nil, fmt.Errorf("sessions of user %d: %w", u.ID, err)
		}
		d := newSessionData(m)
		if s.expiry(d.login, now) <= 0 {
			continue
		}
		created := time.Unix(d.login, 0).UTC()
		lastUsed := created
		if moved := r.Expires.Add(-s.idle).UTC(); !r.Expires.IsZero() && moved.After(created) {
			lastUsed = moved
		}
		if lastUsed.After(now) {
			lastUsed = now.UTC()
		}
		list = append(list, handlers.Session{
			ID:        r.Handle,
			Created:   created,
			LastUsed:  lastUsed,
			UserAgent: str(m[keyAgent]),
			Address:   str(m[keyAddr]),
			Current:   r.Current,
		})
	}
	slices.SortFunc(list, func(a, b handlers.Session) int {
		return cmp.Or(b.Created.Compare(a.Created), strings.Compare(a.ID, b.ID))
	})
	return list, nil
}

// EndOne implements handlers.Sessions with one statement. It logs the end.
func (s *sessions) EndOne(c *fiber.Ctx, u users.User, id string) (bool, error) {
	ended, current, err := s.store.DeleteHandle(c.UserContext(), owner(u.ID), id, c.Cookies(s.cookie))
	if err != nil {
		return false, fmt.Errorf("end session of user %d: %w", u.ID, err)
	}
	if !ended {
		return false, nil
	}
	if !current {
		s.logEvent(c, "session ended")
		return true, nil
	}
	s.setCookie(c, "", 0) // the request's own session: a logout
	s.logEvent(c, "logout")
	return true, nil
}

// str is v if it is a string, else "" (a session from before the field existed).
func str(v any) string {
	s, _ := v.(string)
	return s
}
