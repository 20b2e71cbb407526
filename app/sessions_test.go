package app

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The guard checks an id's signature once per session value it serves from memory, and for that
// id only: the value it serves is marked for the request's id, a new value (the session
// rewritten) is unmarked until the guard has checked it, and a value marked for one id does not
// pass for another, which is refused with no read of the store.
func TestGuardVerifiesOncePerValueAndID(t *testing.T) {
	t.Parallel()
	db, cfg, ids, log, store := benchSetup(t)
	handler := served(newServer(cfg, db, store, ids, observers{}, nil, Hooks{Now: time.Now}, log))
	sid := benchLogin(t, handler)
	me := func(id string) int {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/me")
		ctx.Request.Header.SetCookie(cookieName(cfg.CookieSecure), id)
		handler(&ctx)
		return ctx.Response.StatusCode()
	}
	// cached is the value memory holds for id.
	cached := func(id string) *sessionData {
		t.Helper()
		v, _, ok := store.Cached(id)
		d, _ := v.(*sessionData)
		if !ok || d == nil {
			t.Fatalf("Cached(%.8s...): %v, %v; want a *sessionData in memory", id, v, ok)
		}
		return d
	}

	for i := range 10 {
		if got := me(sid); got != 200 {
			t.Fatalf("GET /me %d: got %d, want 200", i, got)
		}
	}
	first := cached(sid)
	if !first.verifiedFor(sid) {
		t.Error("the value served: not marked for its id")
	}

	val, err := store.Get(sid)
	if err != nil || val == nil {
		t.Fatalf("the session's value: %q, %v", val, err)
	}
	// The login's notification first: arriving after the rewrite, it would drop the new copy,
	// whose row it does not describe.
	for deadline := time.Now().Add(10 * time.Second); store.Stats().Invalidations < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the login's notification did not come within 10s")
		}
	}
	if err := store.Set(sid, val, cfg.IdleTimeout); err != nil { // rewritten: decoded anew
		t.Fatal(err)
	}
	second := cached(sid)
	if second == first || second.verifiedFor(sid) {
		t.Fatalf("after the rewrite: the same value %v, marked %v; want a new value, unmarked", second == first, second.verifiedFor(sid))
	}
	// Concurrent requests on the new value, which each may check and mark (under -race: the
	// mark is the only field that changes).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if got := me(sid); got != 200 {
					t.Errorf("GET /me after the rewrite: got %d, want 200", got)
					return
				}
			}
		})
	}
	wg.Wait()
	if !second.verifiedFor(sid) {
		t.Fatal("after the rewrite: the new value served is not marked for its id")
	}

	forged := sid[:idRandLen] + strings.Repeat("A", idMACLen)
	if ids.Valid(forged) {
		t.Fatal("the forged id is valid")
	}
	if err := store.Set(forged, val, cfg.IdleTimeout); err != nil {
		t.Fatal(err)
	}
	planted := cached(forged)
	planted.markVerified(sid) // as if the value had also been served under sid
	reads := store.Stats().Reads
	if got := me(forged); got != 401 {
		t.Errorf("GET /me with a forged id whose value is marked for another: got %d, want 401", got)
	}
	if planted.verifiedFor(forged) {
		t.Error("the forged id's value got marked for it")
	}
	if got := store.Stats().Reads - reads; got != 0 {
		t.Errorf("the refusal read the store %d times, want 0", got)
	}
}
