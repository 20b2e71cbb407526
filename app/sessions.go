package app

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/session"

	"github.com/gofiber-template/sessions/app/users"
	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage"
)

// cookieName is the session cookie's name: with the __Host- prefix when the cookie is Secure,
// so that browsers accept it only from HTTPS, for this host and path /, and no subdomain can
// set or shadow it. Browsers refuse a __Host- cookie that is not Secure, hence the plain name
// with COOKIE_SECURE=false.
func cookieName(secure bool) string {
	if secure {
		return "__Host-session"
	}
	return "session"
}

// What a session holds: a few primitives, so that Fiber's gob encoding stays small. Everything
// the guard hands a handler is here: serving /me reads nothing else.
const (
	keyUserID  = "uid"   // int64, users.id
	keyEmail   = "email" // string
	keyTouched = "t"     // int64, unix seconds of the last write that moved the expiry
	keyLogin   = "l"     // int64, unix seconds of the login; never changes
)

var errLoginRequired = fiber.NewError(fiber.StatusUnauthorized, "login required")

// sessions runs login sessions on Fiber's session middleware over the tiered store. It
// implements handlers.Sessions and provides the guard. It is safe for concurrent use.
//
// Fiber's middleware writes sessions (login, refresh, logout). The guard reads them through the
// store's decoded form instead (see sessionData), because the middleware would gob-decode the
// session again on every request.
//
// Fiber v2's session has three traps handled here: Save leaves the session locked when the
// store fails, so a session whose Save failed is dropped, never used again; its cookie is not
// HttpOnly unless asked; and it looks up whatever cookie it is sent, so a cookie that is not a
// valid id (sessionIDs) is removed from the request before Fiber's middleware reads it.
//
// A session ends at the first of: its idle timeout after the last move of its expiry, and its
// absolute lifetime after its login. The row's and the cookie's expiry never reach past the
// latter, and the guard refuses a session past it whatever the row says.
type sessions struct {
	fiber   *session.Store
	store   *storage.Store
	ids     sessionIDs
	cookie  string // cookieName
	now     func() time.Time
	touch   int64 // TouchInterval in seconds
	idle    int64 // IdleTimeout in seconds
	maxLife int64 // MaxLifetime in seconds
	bind    bool  // whether sessions are bound to their owner (false only for Hooks.InMemoryStore)
	log     *slog.Logger
}

// sessionData is a session as the guard reads it. The store decodes each stored value once
// (storage.Config.Decode, set to decodeSession) and hands the same *sessionData to every
// request until the value changes, so it is never modified.
type sessionData struct {
	user    users.User // ID 0: not a login session
	touched int64      // keyTouched
	login   int64      // keyLogin
}

// decodeSession turns a stored session, the gob-encoded map Fiber's middleware saves, into a
// *sessionData.
func decodeSession(val []byte) (any, error) {
	var m map[string]any
	if err := gob.NewDecoder(bytes.NewReader(val)).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	d := &sessionData{}
	d.user.ID, _ = m[keyUserID].(int64)
	d.user.Email, _ = m[keyEmail].(string)
	d.touched, _ = m[keyTouched].(int64)
	d.login, _ = m[keyLogin].(int64)
	return d, nil
}

var _ handlers.Sessions = (*sessions)(nil)

// newSessions returns the sessions over store, whose Config.Decode must be decodeSession, with
// ids minted and checked by ids. bind says whether to bind sessions to their user for logging
// out everywhere (false only for Hooks.InMemoryStore, which cannot).
func newSessions(store *storage.Store, ids sessionIDs, cfg Config, now func() time.Time, bind bool, log *slog.Logger) *sessions {
	name := cookieName(cfg.CookieSecure)
	return &sessions{
		fiber: session.New(session.Config{
			Storage:        store,
			Expiration:     cfg.IdleTimeout,
			KeyLookup:      "cookie:" + name,
			CookiePath:     "/",
			CookieSecure:   cfg.CookieSecure,
			CookieHTTPOnly: true,
			CookieSameSite: "Lax",
			KeyGenerator:   ids.New,
		}),
		store:   store,
		ids:     ids,
		cookie:  name,
		now:     now,
		touch:   int64(cfg.TouchInterval / time.Second),
		idle:    int64(cfg.IdleTimeout / time.Second),
		maxLife: int64(cfg.MaxLifetime / time.Second),
		bind:    bind,
		log:     log,
	}
}

// expiry is how long a session that logged in at login (unix seconds) may live from now: the
// idle timeout, cut short by the absolute lifetime. Zero or less: the session is over.
func (s *sessions) expiry(login int64, now time.Time) time.Duration {
	return min(time.Duration(s.idle)*time.Second, time.Unix(login+s.maxLife, 0).Sub(now))
}

// owner is the owner under which the store files a user's sessions.
func owner(userID int64) string { return strconv.FormatInt(userID, 10) }

// Start implements handlers.Sessions. The session id always changes, so an id planted in the
// browser before login (session fixation) is worth nothing after it.
func (s *sessions) Start(c *fiber.Ctx, u users.User) error {
	if !s.ids.Valid(c.Cookies(s.cookie)) {
		c.Request().Header.DelCookie(s.cookie) // Fiber would look it up
	}
	sess, err := s.fiber.Get(c)
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	// Reset deletes the old session with its data, whoever it belonged to, and picks a new id.
	// A fresh session has a new id already, and nothing to delete.
	if !sess.Fresh() {
		if err := sess.Reset(); err != nil {
			return fmt.Errorf("reset session: %w", err)
		}
	}
	id := sess.ID() // Save releases sess: read the id before.
	now := s.now()
	sess.Set(keyUserID, u.ID)
	sess.Set(keyEmail, u.Email)
	sess.Set(keyTouched, now.Unix())
	sess.Set(keyLogin, now.Unix())
	sess.SetExpiry(s.expiry(now.Unix(), now))
	if err := sess.Save(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if !s.bind {
		return nil
	}
	// Until bound, the session would survive "log out everywhere" and be missing from the
	// user's list. Bind follows Save at once.
	if err := s.store.Bind(c.UserContext(), id, owner(u.ID), loginInfo(c)); err != nil {
		_ = s.store.Delete(id)
		return fmt.Errorf("bind session: %w", err)
	}
	return nil
}

// End implements handlers.Sessions. It logs the logout.
func (s *sessions) End(c *fiber.Ctx) error {
	if err := s.end(c); err != nil {
		return err
	}
	s.logEvent(c, "logout")
	return nil
}

// end ends the request's session and expires its cookie.
func (s *sessions) end(c *fiber.Ctx) error {
	sess, err := s.fiber.Get(c)
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	// Destroy deletes the row (other instances hear of it) and expires the cookie.
	if err := sess.Destroy(); err != nil {
		return fmt.Errorf("destroy session: %w", err)
	}
	return nil
}

// EndAll implements handlers.Sessions. It logs the logout everywhere.
func (s *sessions) EndAll(c *fiber.Ctx, u users.User) error {
	if _, err := s.store.DeleteOwner(c.UserContext(), owner(u.ID)); err != nil {
		return fmt.Errorf("delete sessions of user %d: %w", u.ID, err)
	}
	if err := s.end(c); err != nil { // the row is gone already; this expires the cookie
		return err
	}
	s.logEvent(c, "logout everywhere")
	return nil
}

// logEvent writes the security log line of a session event: the user's id and the client
// address. Never the session id or the cookie.
func (s *sessions) logEvent(c *fiber.Ctx, event string) {
	s.log.LogAttrs(c.UserContext(), slog.LevelInfo, event, slog.String("outcome", "success"),
		slog.Int64("user", handlers.CurrentUser(c).ID), slog.String("client", c.IP()))
}

// Guard is the middleware in front of every protected route. It answers 401 unless the request
// carries a live session, and hands the handler the session's user (handlers.CurrentUser). For a
// session in memory it sends nothing to the database and decodes nothing; for a cookie that is
// not a valid session id (sessionIDs.Valid) it looks nothing up.
//
// It refreshes the session's expiry, in the store and in the cookie, at most once per touch
// interval and never past the absolute lifetime: steady use of one session costs one write per
// interval, and most requests none. The refresh never brings back a session logged out
// meanwhile: the store refuses it (storage.ErrDeleted) and the request gets 401.
func (s *sessions) Guard(c *fiber.Ctx) error {
	id := c.Cookies(s.cookie)
	if !s.ids.Valid(id) {
		return errLoginRequired
	}
	v, err := s.store.GetDecoded(c.UserContext(), id)
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	d, _ := v.(*sessionData)
	if d == nil || d.user.ID == 0 {
		return errLoginRequired
	}
	now := s.now()
	if s.expiry(d.login, now) <= 0 {
		return errLoginRequired // past its absolute lifetime, whatever the row's expiry says
	}
	// Once a refresh has reached the absolute lifetime, another could not move the expiry.
	if t := now.Unix(); t-d.touched >= s.touch && d.touched+s.idle < d.login+s.maxLife {
		if err := s.refresh(c, now, d.login); err != nil {
			return err
		}
	}
	handlers.SetUser(c, d.user)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// refresh moves the expiry of the request's session, which logged in at login, through Fiber's
// middleware so that the cookie moves with it, and records now as its touch time.
func (s *sessions) refresh(c *fiber.Ctx, now time.Time, login int64) error {
	sess, err := s.fiber.Get(c)
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	if _, ok := sess.Get(keyUserID).(int64); !ok {
		return errLoginRequired // ended since the guard read it
	}
	sess.Set(keyTouched, now.Unix())
	sess.SetExpiry(s.expiry(login, now))
	if err := sess.Save(); err != nil {
		if errors.Is(err, storage.ErrDeleted) {
			return errLoginRequired
		}
		return fmt.Errorf("refresh session: %w", err)
	}
	return nil
}
