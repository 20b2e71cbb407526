package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// A password is one password however it is typed: set in one Unicode form by the CLI, it logs
// in over HTTP in any equivalent form, and never in a different password's.
func TestPasswordFormsLogIn(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	const set = "caf\u00e9\u00a0cr\u00e8me br\u00fbl\u00e9e night" // composed, with a no-break space
	mustCreateUser(t, dbURL, "ada@example.com", set)
	s := startServer(t, baseEnv(dbURL), app.Hooks{})
	for _, tt := range []struct {
		name, password string
		want           int
	}{
		{"as set", set, http.StatusOK},
		{"decomposed, plain space", "cafe\u0301 cre\u0300me bru\u0302le\u0301e night", http.StatusOK},
		{"full-width night", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e \uff4e\uff49\uff47\uff48\uff54", http.StatusOK},
		{"without accents", "cafe creme brulee night", http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := do(t, newClient(t), "POST", s.URL+"/login", "application/json", loginBody("ada@example.com", tt.password)); status != tt.want {
				t.Errorf("login with %+q: got %d %s, want %d", tt.password, status, body, tt.want)
			}
		})
	}
}

// A password that no login could send (a NUL, which the login's JSON refuses) or that nobody can
// see (zero-width spaces) is refused when it is set, not accepted into an account nobody can log
// in to.
func TestUnusablePasswordsRefused(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	for _, pw := range []string{"quartz vivid \x00 ember lantern", strings.Repeat("\u200b", 15), "quartz vivid\u0007ember lantern"} {
		if out, err := runCLI(t, baseEnv(dbURL), pw+"\n", "user", "create", "bob@example.com"); err == nil || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("user create with %+q: got %q, %v; want an error saying not allowed", pw, out, err)
		}
	}
	if n := pgtest.Count(t, pgtest.Pool(t, dbURL), "SELECT count(*) FROM users"); n != 0 {
		t.Errorf("users: got %d, want 0", n)
	}
}
