package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// The account flows (sign-up, change password, delete account) go through the same gate as
// login: these tests check what each promises across two instances, by status and by the fields
// of the answers, so that a user who changes the bodies changes only their code.

func signupBody(email, password string) string { return loginBody(email, password) }

func passwordBody(current, next string) string {
	b, _ := json.Marshal(map[string]string{"current_password": current, "new_password": next})
	return string(b)
}

func deleteBody(password string) string {
	b, _ := json.Marshal(map[string]string{"password": password})
	return string(b)
}

// twoServersWith starts two servers on one fresh database with env's settings added to the
// test defaults.
func twoServersWith(t *testing.T, extra map[string]string) (dbURL string, a, b *server) {
	t.Helper()
	dbURL = pgtest.NewURL(t)
	env := baseEnv(dbURL)
	for k, v := range extra {
		env[k] = v
	}
	return dbURL, startServer(t, env, app.Hooks{}), startServer(t, env, app.Hooks{})
}

func TestSignupIsOffByDefault(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	s := startServer(t, baseEnv(dbURL), app.Hooks{})
	status, body := do(t, newClient(t), "POST", s.URL+"/signup", "application/json", signupBody("new@example.com", password))
	if status != http.StatusNotFound {
		t.Errorf("POST /signup with SIGNUP unset: got %d %s, want 404", status, body)
	}
	if n := pgtest.Count(t, pgtest.Pool(t, dbURL), "SELECT count(*) FROM users"); n != 0 {
		t.Errorf("users after a refused sign-up: got %d, want 0", n)
	}
}

func TestSignup(t *testing.T) {
	t.Parallel()
	dbURL, a, b := twoServersWith(t, map[string]string{"SIGNUP": "true"})
	c := newClient(t)

	status, body := do(t, c, "POST", a.URL+"/signup", "application/json", signupBody(" Grace@Example.com ", password))
	if u := decodeUser(t, body); status != http.StatusCreated || u.ID == 0 || u.Email != "grace@example.com" {
		t.Fatalf("POST /signup: got %d %s, want 201 and the new user grace@example.com", status, body)
	}
	// Logged in at once, on every instance.
	mustMe(t, c, a, http.StatusOK)
	mustMe(t, c, b, http.StatusOK)
	mustLogin(t, newClient(t), b, "grace@example.com", password)

	// A taken email, in any case, is 409 whatever the password: a sign-up never logs anyone in
	// to an account that exists, so it is no way around login's throttle.
	for _, taken := range []string{"grace@example.com", "GRACE@example.COM"} {
		other := newClient(t)
		status, body := do(t, other, "POST", b.URL+"/signup", "application/json", signupBody(taken, password))
		if status != http.StatusConflict {
			t.Errorf("POST /signup %s (taken): got %d %s, want 409", taken, status, body)
		}
		mustMe(t, other, b, http.StatusUnauthorized)
	}

	// The password policy applies, with its reason, and nothing is created.
	for _, weak := range []string{"short", "passwordpassword", strings.Repeat("a", 20)} {
		status, body := do(t, newClient(t), "POST", a.URL+"/signup", "application/json", signupBody("weak@example.com", weak))
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, "error") {
			t.Errorf("POST /signup with password %q: got %d %s, want 422 with the reason", weak, status, body)
		}
	}
	// Bad input is 4xx and creates nothing.
	for _, bad := range []string{``, `{}`, `{"email":"not an email","password":"a fine brass lantern glow"}`, `{"email":"x@example.com"}`} {
		if status, body := do(t, newClient(t), "POST", a.URL+"/signup", "application/json", bad); status < 400 || status >= 500 {
			t.Errorf("POST /signup %q: got %d %s, want a 4xx", bad, status, body)
		}
	}
	if n := pgtest.Count(t, pgtest.Pool(t, dbURL), "SELECT count(*) FROM users"); n != 1 {
		t.Errorf("users: got %d, want 1 (only grace)", n)
	}
}

// Probing emails through sign-up is bounded as guessing through login is: every answer that
// says an email is taken counts as a failure of the client's address, so the address is
// throttled after LOGIN_ADDRESS_FAILURES of them.
func TestSignupProbesAreThrottled(t *testing.T) {
	t.Parallel()
	dbURL, a, _ := twoServersWith(t, map[string]string{"SIGNUP": "true", "LOGIN_ADDRESS_FAILURES": "3"})
	mustCreateUser(t, dbURL, email, password)
	var statuses []int
	for range 6 {
		status, _ := do(t, newClient(t), "POST", a.URL+"/signup", "application/json", signupBody(email, "another fine brass lantern"))
		statuses = append(statuses, status)
	}
	if statuses[0] != http.StatusConflict || statuses[len(statuses)-1] != http.StatusTooManyRequests {
		t.Errorf("six sign-ups with a taken email from one address: got %v, want 409 first and 429 once throttled", statuses)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	dbURL, a, b := twoServersWith(t, nil)
	mustCreateUser(t, dbURL, email, password)
	here, phone, laptop := newClient(t), newClient(t), newClient(t)
	mustLogin(t, here, a, email, password)
	mustLogin(t, phone, a, email, password)
	mustLogin(t, laptop, b, email, password)
	mustMe(t, phone, b, http.StatusOK) // warm on B too
	before := sessionCookie(t, here, a)

	const newPassword = "a whole new password here"
	// A wrong current password changes nothing.
	if status, body := do(t, here, "POST", a.URL+"/me/password", "application/json", passwordBody("not the password at all", newPassword)); status != http.StatusForbidden {
		t.Errorf("POST /me/password with a wrong current password: got %d %s, want 403", status, body)
	}
	// A weak new password is 422 with its reason and changes nothing.
	if status, body := do(t, here, "POST", a.URL+"/me/password", "application/json", passwordBody(password, "passwordpassword")); status != http.StatusUnprocessableEntity {
		t.Errorf("POST /me/password with a weak new password: got %d %s, want 422", status, body)
	}
	mustMe(t, phone, b, http.StatusOK)
	// Without a session: 401.
	if status, _ := do(t, newClient(t), "POST", a.URL+"/me/password", "application/json", passwordBody(password, newPassword)); status != http.StatusUnauthorized {
		t.Errorf("POST /me/password without a session: got %d, want 401", status)
	}

	if status, body := do(t, here, "POST", a.URL+"/me/password", "application/json", passwordBody(password, newPassword)); status != http.StatusNoContent {
		t.Fatalf("POST /me/password: got %d %s, want 204", status, body)
	}
	// This session goes on under a new id; every other one ends, on every instance.
	if after := sessionCookie(t, here, a); after == "" || after == before {
		t.Errorf("session id after a password change: got %q (was %q), want a new one", after, before)
	}
	mustMe(t, here, a, http.StatusOK)
	mustMe(t, here, b, http.StatusOK)
	mustMe(t, withCookie(before), a, http.StatusUnauthorized)
	eventually(t, phone, b, http.StatusUnauthorized, notifyWithin)
	eventually(t, laptop, b, http.StatusUnauthorized, notifyWithin)
	mustMe(t, phone, a, http.StatusUnauthorized)

	if status, _ := do(t, newClient(t), "POST", b.URL+"/login", "application/json", loginBody(email, password)); status != http.StatusUnauthorized {
		t.Errorf("login with the old password: got %d, want 401", status)
	}
	mustLogin(t, newClient(t), b, email, newPassword)
}

func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	dbURL, a, b := twoServersWith(t, nil)
	mustCreateUser(t, dbURL, email, password)
	mustCreateUser(t, dbURL, "bob@example.com", password)
	here, there, bob := newClient(t), newClient(t), newClient(t)
	mustLogin(t, here, a, email, password)
	mustLogin(t, there, b, email, password)
	mustLogin(t, bob, b, "bob@example.com", password)
	mustMe(t, here, b, http.StatusOK)

	if status, body := do(t, here, "DELETE", a.URL+"/me", "application/json", deleteBody("not the password at all")); status != http.StatusForbidden {
		t.Errorf("DELETE /me with a wrong password: got %d %s, want 403", status, body)
	}
	mustMe(t, there, b, http.StatusOK)
	if status, _ := do(t, newClient(t), "DELETE", a.URL+"/me", "application/json", deleteBody(password)); status != http.StatusUnauthorized {
		t.Errorf("DELETE /me without a session: got %d, want 401", status)
	}

	if status, body := do(t, here, "DELETE", a.URL+"/me", "application/json", deleteBody(password)); status != http.StatusNoContent {
		t.Fatalf("DELETE /me: got %d %s, want 204", status, body)
	}
	mustMe(t, here, a, http.StatusUnauthorized)
	eventually(t, here, b, http.StatusUnauthorized, notifyWithin)
	eventually(t, there, b, http.StatusUnauthorized, notifyWithin)
	db := pgtest.Pool(t, dbURL)
	if n := pgtest.Count(t, db, "SELECT count(*) FROM users WHERE email = '"+email+"'"); n != 0 {
		t.Errorf("users named %s after DELETE /me: got %d, want 0", email, n)
	}
	if status, _ := do(t, newClient(t), "POST", a.URL+"/login", "application/json", loginBody(email, password)); status != http.StatusUnauthorized {
		t.Errorf("login to a deleted account: got %d, want 401", status)
	}
	// Nobody else's account or session is touched.
	mustMe(t, bob, a, http.StatusOK)
}
