package tests

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// newKey returns a session key as an operator makes one: base64 of 32 random bytes.
func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// A key rotation is two deploys, and no session ends: first every instance learns the new key
// (old, new: signs with old), then every instance signs with it (new, old). At each step the
// instances of the rolling deploy, old and new, accept each other's cookies. Once the old key
// is gone, a cookie it signed is refused before any lookup.
func TestSessionKeyRotation(t *testing.T) {
	t.Parallel()
	dbURL, base := withUser(t)
	old, fresh := newKey(), newKey()
	start := func(keys ...string) (*server, *pgtest.Counter) {
		t.Helper()
		env := maps.Clone(base)
		env["SESSION_KEYS"] = strings.Join(keys, ",")
		return startCounted(t, env, app.Hooks{})
	}
	before, _ := start(old)
	deploy1, _ := start(old, fresh)
	deploy2, _ := start(fresh, old)

	// A browser that logged in before the rotation, one during each deploy.
	steps := []struct {
		name   string
		login  *server
		others []*server
	}{
		{"before", before, []*server{deploy1, deploy2}},
		{"first deploy", deploy1, []*server{before, deploy2}},
		{"second deploy", deploy2, []*server{deploy1}},
	}
	cookies := map[string]string{}
	for _, st := range steps {
		c := newClient(t)
		mustLogin(t, c, st.login, email, password)
		cookies[st.name] = sessionCookie(t, c, st.login)
		for _, other := range st.others {
			if got := me(t, withCookie(cookies[st.name]), other); got != http.StatusOK {
				t.Errorf("cookie from the %s instance on %s: got %d, want 200", st.name, other.URL, got)
			}
		}
	}
	// An instance of the second deploy signs with the new key: the instances of before the
	// rotation, which never learnt it, are the ones the two deploys keep out of the way.
	if got := me(t, withCookie(cookies["second deploy"]), before); got != http.StatusUnauthorized {
		t.Errorf("new-key cookie on an instance without the new key: got %d, want 401", got)
	}

	// The old key removed: what it signed is refused without a statement, what the new key
	// signed still works.
	after, st := start(fresh)
	for _, name := range []string{"before", "first deploy"} {
		mark := st.Mark()
		if got := me(t, withCookie(cookies[name]), after); got != http.StatusUnauthorized {
			t.Errorf("cookie signed by the removed key (%s): got %d, want 401", name, got)
		}
		if n, sqls := st.Since(mark); n != 0 {
			t.Errorf("cookie signed by the removed key (%s): got %d statements, want 0: %q", name, n, sqls)
		}
	}
	if got := me(t, withCookie(cookies["second deploy"]), after); got != http.StatusOK {
		t.Errorf("new-key cookie after the old key is removed: got %d, want 200", got)
	}
	// Keys from outside are never written to, nor read from, the database.
	if n := pgtest.Count(t, pgtest.Pool(t, dbURL), "SELECT count(*) FROM session_key"); n != 0 {
		t.Errorf("session_key rows with SESSION_KEYS set: got %d, want 0", n)
	}
}

// A cookie signed by a key the instance does not have is refused without a statement even when
// the instance holds its session warm in memory (read there by the store itself, as a stale
// entry would be): memory's entry skips the signature check only for an id checked against it.
func TestRemovedKeyRefusedWhenWarm(t *testing.T) {
	t.Parallel()
	_, base := withUser(t)
	old, fresh := newKey(), newKey()
	start := func(keys ...string) (*server, *pgtest.Counter) {
		t.Helper()
		env := maps.Clone(base)
		env["SESSION_KEYS"] = strings.Join(keys, ",")
		return startCounted(t, env, app.Hooks{Config: noSweep})
	}
	before, _ := start(old)
	c := newClient(t)
	mustLogin(t, c, before, email, password)
	mustMe(t, c, before, http.StatusOK)
	cookie := sessionCookie(t, c, before)

	after, st := start(fresh)
	if d, _, err := after.Store.GetDecoded(context.Background(), cookie); err != nil || d == nil {
		t.Fatalf("GetDecoded of the old key's session: %v, %v; want it read into memory", d, err)
	}
	const requests = 5
	hits, mark := after.Store.Stats().Hits, st.Mark()
	for range requests {
		if got := me(t, withCookie(cookie), after); got != http.StatusUnauthorized {
			t.Fatalf("cookie signed by the removed key, its session warm: got %d, want 401", got)
		}
	}
	if n, sqls := st.Since(mark); n != 0 {
		t.Errorf("cookie signed by the removed key, its session warm: got %d statements, want 0: %q", n, sqls)
	}
	if got := after.Store.Stats().Hits - hits; got != requests {
		t.Fatalf("%d memory hits for %d requests, want one each: the session was not warm", got, requests)
	}
	mustMe(t, c, before, http.StatusOK) // still good where its key is
}

// SESSION_KEYS_FILE gives the keys one a line; its keys sign and verify as SESSION_KEYS's do,
// so an instance reading the file and one reading the variable share sessions.
func TestSessionKeysFile(t *testing.T) {
	t.Parallel()
	_, base := withUser(t)
	old, fresh := newKey(), newKey()
	path := filepath.Join(t.TempDir(), "session-keys")
	if err := os.WriteFile(path, []byte("# newest first\n"+fresh+"\n\n"+old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile := maps.Clone(base)
	fromFile["SESSION_KEYS_FILE"] = path
	fromVar := maps.Clone(base)
	fromVar["SESSION_KEYS"] = old + "," + fresh
	a, b := startServer(t, fromFile, app.Hooks{}), startServer(t, fromVar, app.Hooks{})
	for _, pair := range [][2]*server{{a, b}, {b, a}} {
		c := newClient(t)
		mustLogin(t, c, pair[0], email, password)
		if got := me(t, withCookie(sessionCookie(t, c, pair[0])), pair[1]); got != http.StatusOK {
			t.Errorf("cookie from %s on %s: got %d, want 200", pair[0].URL, pair[1].URL, got)
		}
	}
}
