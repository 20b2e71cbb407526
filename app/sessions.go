package app

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/session"

	"github.com/gofiber-template/sessions/handlers"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/storage/users"
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

// The session cookie's attributes, besides its name and Secure, shared by Fiber's middleware
// (login, logout) and setCookie (refresh, logging out everywhere).
const (
	cookiePath     = "/"
	cookieSameSite = fiber.CookieSameSiteLaxMode
)

// What a session holds: a few primitives, so that Fiber's gob encoding stays small, written
// once at login and never changed. Everything the guard hands a handler is here: serving /me
// reads nothing else. The last use is not: a refresh moves the row's expiry and nothing else
// (storage.Store.Touch), so that it costs other instances nothing.
const (
	keyUserID = "uid"   // int64, users.id
	keyEmail  = "email" // string
	keyLogin  = "l"     // int64, unix seconds of the login
	keyAgent  = "ua"    // string, the login's User-Agent (userAgent), for the user's list
	keyAddr   = "ip"    // string, the login's client address, for the user's list
)

var errLoginRequired = fiber.NewError(fiber.StatusUnauthorized, "login required")

// The guard's Cache-Control: no-store, its name as fasthttp normalises it.
var cacheControlName, noStore = []byte(fiber.HeaderCacheControl), []byte("no-store")

// sessions runs login sessions on Fiber's session middleware over the tiered store. It
// implements handlers.Sessions and provides the guard. It is safe for concurrent use.
//
// Fiber's middleware writes sessions (login) and ends them (logout). The guard reads them
// through the store's decoded form instead (see sessionData), because the middleware would
// gob-decode the session again on every request, and refreshes them with the store's Touch,
// which moves the row's expiry without rewriting the value. The store files each session under
// its user as Fiber's middleware saves it (sessionOwner), in the same statement.
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
	secure  bool   // Config.CookieSecure
	now     func() time.Time
	touch   time.Duration // Config.TouchInterval
	idle    time.Duration // Config.IdleTimeout
	maxLife time.Duration // Config.MaxLifetime
	log     *slog.Logger
}

// sessionData is a session as the guard reads it. The store decodes each stored value once
// (storage.Config.Decode, set to decodeSession), keeps the result with its copy in memory, and
// hands the same *sessionData to every request until the value changes, so it is shared by
// concurrent requests: user and login never change, and verified changes only atomically. What
// only the user's list shows (keyAgent, keyAddr) is left out of it.
type sessionData struct {
	user  users.User // ID 0: not a login session
	login int64      // keyLogin
	// verified is the session id the guard found valid (sessionIDs.Valid) for this value, nil
	// until then. A new value (the session rewritten, or read again) starts unverified.
	verified atomic.Pointer[string]
}

// verifiedFor reports whether the guard has found id valid for this value. It compares ids,
// not pointers: a value handed out under another key would not pass for id.
func (d *sessionData) verifiedFor(id string) bool {
	v := d.verified.Load()
	return v != nil && *v == id
}

// markVerified records that id is valid for this value. id may point into Fiber's buffers: a
// copy is kept.
func (d *sessionData) markVerified(id string) {
	v := strings.Clone(id)
	d.verified.Store(&v)
}

// sessionMap decodes a stored session: the gob-encoded map Fiber's middleware saves.
func sessionMap(val []byte) (map[string]any, error) {
	var m map[string]any
	if err := gob.NewDecoder(bytes.NewReader(val)).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	return m, nil
}

// decodeSession turns a stored session into a *sessionData.
func decodeSession(val []byte) (any, error) {
	m, err := sessionMap(val)
	if err != nil {
		return nil, err
	}
	return newSessionData(m), nil
}

func newSessionData(m map[string]any) *sessionData {
	d := &sessionData{}
	d.user.ID, _ = m[keyUserID].(int64)
	d.user.Email, _ = m[keyEmail].(string)
	d.login, _ = m[keyLogin].(int64)
	return d
}

// sessionOwner is the owner the store files a session under (storage.Config.Owner), from its
// decodeSession form: its user, so that logging out everywhere and the user's list find it.
func sessionOwner(decoded any) string {
	if d, ok := decoded.(*sessionData); ok && d.user.ID != 0 {
		return owner(d.user.ID)
	}
	return ""
}

var _ handlers.Sessions = (*sessions)(nil)

// newSessions returns the sessions over store, whose Config.Decode must be decodeSession and
// Config.Owner sessionOwner, with ids minted and checked by ids.
func newSessions(store *storage.Store, ids sessionIDs, cfg Config, now func() time.Time, log *slog.Logger) *sessions {
	name := cookieName(cfg.CookieSecure)
	return &sessions{
		fiber: session.New(session.Config{
			Storage:        store,
			Expiration:     cfg.IdleTimeout,
			KeyLookup:      "cookie:" + name,
			CookiePath:     cookiePath,
			CookieSecure:   cfg.CookieSecure,
			CookieHTTPOnly: true,
			CookieSameSite: cookieSameSite,
			KeyGenerator:   ids.New,
		}),
		store:   store,
		ids:     ids,
		cookie:  name,
		secure:  cfg.CookieSecure,
		now:     now,
		touch:   cfg.TouchInterval,
		idle:    cfg.IdleTimeout,
		maxLife: cfg.MaxLifetime,
		log:     log,
	}
}

// expiry is how long a session that logged in at login (unix seconds) may live from now: the
// idle timeout, cut short by the absolute lifetime. Zero or less: the session is over.
func (s *sessions) expiry(login int64, now time.Time) time.Duration {
	return min(s.idle, time.Unix(login, 0).Add(s.maxLife).Sub(now))
}

// refreshed is the expiry a refresh at now gives a session that logged in at login: the idle
// timeout from the start of the touch interval now falls in (intervals counted from the
// login), cut short by the absolute lifetime. Within one interval every instance computes the
// same expiry, so once one has refreshed the session, another's refresh writes nothing
// (storage.Store.Touch). A session used at any time thus lives at least the idle timeout less
// one touch interval after that use. Whole seconds, as the store keeps expiries.
func (s *sessions) refreshed(login int64, now time.Time) time.Time {
	start := time.Unix(login, 0)
	interval := start.Add(now.Sub(start).Truncate(s.touch))
	return time.Unix(min(interval.Add(s.idle).Unix(), start.Add(s.maxLife).Unix()), 0)
}

// setCookie sets the session cookie to id for life, with the attributes Fiber's middleware gives
// it; a life of zero or less deletes it.
func (s *sessions) setCookie(c *fiber.Ctx, id string, life time.Duration) {
	ck := &fiber.Cookie{Name: s.cookie, Value: id, Path: cookiePath, Secure: s.secure, HTTPOnly: true, SameSite: cookieSameSite}
	// The browser's clock, not the sessions' (which tests move), as Fiber's middleware does.
	if life > 0 {
		ck.MaxAge, ck.Expires = int(life/time.Second), time.Now().Add(life)
	} else {
		ck.Value, ck.MaxAge, ck.Expires = "", -1, time.Now().Add(-time.Minute)
	}
	c.Cookie(ck)
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
	now := s.now()
	sess.Set(keyUserID, u.ID)
	sess.Set(keyEmail, u.Email)
	sess.Set(keyLogin, now.Unix())
	sess.Set(keyAgent, userAgent(c.Get(fiber.HeaderUserAgent)))
	sess.Set(keyAddr, c.IP())
	sess.SetExpiry(s.expiry(now.Unix(), now))
	// One statement: the store writes the session filed under its user (sessionOwner), so it
	// is never stored where logging out everywhere would miss it.
	if err := sess.Save(); err != nil {
		return fmt.Errorf("save session: %w", err)
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

// EndAll implements handlers.Sessions with one statement. It logs the logout everywhere.
func (s *sessions) EndAll(c *fiber.Ctx, u users.User) error {
	if _, err := s.store.DeleteOwner(c.UserContext(), owner(u.ID)); err != nil {
		return fmt.Errorf("delete sessions of user %d: %w", u.ID, err)
	}
	s.setCookie(c, "", 0) // the request's session went with the others
	s.logEvent(c, "logout everywhere")
	return nil
}

// logEvent writes the security log line of a session event: the user's id and the client
// address. Never the session id or the cookie.
func (s *sessions) logEvent(c *fiber.Ctx, event string) {
	s.log.LogAttrs(c.UserContext(), slog.LevelInfo, event, slog.String("outcome", "success"),
		slog.Int64("user", handlers.CurrentUser(c).ID), slog.String("client", strings.Clone(c.IP())))
}

// Guard is the middleware in front of every protected route. It answers 401 unless the request
// carries a live session, and hands the handler the session's user (handlers.CurrentUser) with
// Cache-Control: no-store already set on the answer. For a session in memory it sends nothing to
// the database and decodes nothing.
//
// A cookie that is not a valid session id (sessionIDs.Valid) is refused before any database
// lookup and is never handed a session, whatever the store holds: one of the wrong length or
// alphabet costs nothing, any other one memory probe (storage.Store.Cached). The signature check
// is the guard's largest cost, so it runs once per session value in memory: a value the guard
// has found valid for this very id (sessionData.verified) skips it; any other id, and every value
// memory does not hold, is checked before the store reads anything.
//
// It refreshes the session's expiry, in the store and in the cookie, once per touch interval
// (see refreshed) and never past the absolute lifetime: steady use of one session costs one
// statement per interval on each instance that serves it, of which only the first writes; most
// requests cost none, and no instance pays anything for another's refresh. The refresh never brings back a session
// logged out meanwhile: the store refuses it (storage.ErrDeleted) and the request gets 401.
func (s *sessions) Guard(c *fiber.Ctx) error {
	id := c.Cookies(s.cookie)
	if !wellFormed(id) {
		return errLoginRequired
	}
	v, expires, warm := s.store.Cached(id)
	d, _ := v.(*sessionData)
	if d == nil || !d.verifiedFor(id) {
		if !s.ids.Valid(id) {
			return errLoginRequired
		}
		if !warm { // when warm, the probe's answer is the one GetDecoded would give
			var err error
			if v, expires, err = s.store.GetDecoded(c.UserContext(), id); err != nil {
				return fmt.Errorf("load session: %w", err)
			}
			d, _ = v.(*sessionData)
		}
		if d != nil {
			d.markVerified(id)
		}
	}
	if d == nil || d.user.ID == 0 {
		return errLoginRequired
	}
	now := s.now()
	if s.expiry(d.login, now) <= 0 {
		return errLoginRequired // past its absolute lifetime, whatever the row's expiry says
	}
	// Once per touch interval; never once the expiry has reached the absolute lifetime.
	if until := s.refreshed(d.login, now); !expires.IsZero() && expires.Before(until) {
		if err := s.refresh(c, id, until, now); err != nil {
			return err
		}
	}
	handlers.SetUser(c, &d.user) // d.user never changes
	c.Response().Header.SetCanonical(cacheControlName, noStore)
	return c.Next()
}

// refresh moves the expiry of the session id, in the store and in the cookie, to until.
func (s *sessions) refresh(c *fiber.Ctx, id string, until, now time.Time) error {
	if err := s.store.Touch(c.UserContext(), id, until); err != nil {
		// storage.ErrDeleted (ended since the guard read it) is a 401 (errorHandler).
		return fmt.Errorf("refresh session: %w", err)
	}
	s.setCookie(c, id, until.Sub(now))
	return nil
}
