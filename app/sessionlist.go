package app

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/gofiber-template/sessions/app/users"
	"github.com/gofiber-template/sessions/handlers"
)

// A user's list of sessions (GET /sessions, DELETE /sessions/{id}). The store files each
// session under its user at login (storage.Store.Bind) with what the list shows of it beyond the
// session itself; the login and last-touch times come from the session's own data, so listing
// adds no write to any request.

// maxUserAgent is the most bytes of a User-Agent header kept with a session: enough to tell
// browsers and devices apart.
const maxUserAgent = 256

// sessionInfo is what Start records with a session for its user's list: never the cookie.
type sessionInfo struct {
	Agent string `json:"agent"` // the User-Agent header at login, cleaned by userAgent
	Addr  string `json:"addr"`  // c.IP() at login
}

// loginInfo is the sessionInfo of the login request c, as JSON.
func loginInfo(c *fiber.Ctx) []byte {
	b, _ := json.Marshal(sessionInfo{Agent: userAgent(c.Get(fiber.HeaderUserAgent)), Addr: c.IP()})
	return b
}

// userAgent returns ua without invalid UTF-8 or unprintable characters (PostgreSQL's jsonb
// refuses NUL), cut to at most maxUserAgent bytes on a character boundary.
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
func (s *sessions) List(c *fiber.Ctx, u users.User) ([]handlers.Session, error) {
	rows, err := s.store.Owned(c.UserContext(), owner(u.ID), c.Cookies(s.cookie))
	if err != nil {
		return nil, fmt.Errorf("sessions of user %d: %w", u.ID, err)
	}
	now := s.now()
	list := make([]handlers.Session, 0, len(rows))
	for _, r := range rows {
		v, err := decodeSession(r.Value)
		if err != nil {
			return nil, fmt.Errorf("sessions of user %d: %w", u.ID, err)
		}
		d := v.(*sessionData)
		if s.expiry(d.login, now) <= 0 {
			continue
		}
		var info sessionInfo
		if len(r.Info) > 0 {
			if err := json.Unmarshal(r.Info, &info); err != nil {
				return nil, fmt.Errorf("sessions of user %d: info: %w", u.ID, err)
			}
		}
		list = append(list, handlers.Session{
			ID:        r.Handle,
			Created:   time.Unix(d.login, 0).UTC(),
			LastUsed:  time.Unix(d.touched, 0).UTC(),
			UserAgent: info.Agent,
			Address:   info.Addr,
			Current:   r.Current,
		})
	}
	slices.SortFunc(list, func(a, b handlers.Session) int {
		return cmp.Or(b.Created.Compare(a.Created), strings.Compare(a.ID, b.ID))
	})
	return list, nil
}

// EndOne implements handlers.Sessions with one statement (a second, to expire the cookie, when
// the session is the request's own). It logs the end.
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
	if err := s.end(c); err != nil { // the row is gone already; this expires the cookie
		return true, err
	}
	s.logEvent(c, "logout")
	return true, nil
}
