package system

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/internal/testenv"
	"github.com/gofiber-template/sessions/storage"
	"github.com/gofiber-template/sessions/web"
)

// chromiumInstall is what the failure message tells a developer to run.
const chromiumInstall = "sudo apt-get install chromium (Debian; .ci/run does this), chromium-browser (Ubuntu), or install Google Chrome"

// TestBrowser drives the demo page in headless Chromium with the server's default, production
// cookie (COOKIE_SECURE=true: __Host-session, Secure, HttpOnly, SameSite=Lax): log in, reload and
// still be logged in, log out, reload and be logged out, and see the message for a wrong
// password, all under the page's Content-Security-Policy. It saves screenshots in a temporary
// directory it logs and leaves in place.
func TestBrowser(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	mustCreateUser(t, dbURL, email, password)
	env := baseEnv(dbURL)
	delete(env, "COOKIE_SECURE") // the default: what a browser gets in production
	env["SIGNUP"] = "true"       // the page offers sign-up only when the server does
	s := startServer(t, env, app.Hooks{})

	// The policy is on the page and allows no inline code.
	resp := doResp(t, http.DefaultClient, "GET", s.URL+"/", "", "")
	readBody(t, resp)
	if got := resp.Header.Get("Content-Security-Policy"); got != web.ContentSecurityPolicy || strings.Contains(got, "unsafe-inline") {
		t.Fatalf("GET / Content-Security-Policy: got %q, want %q", got, web.ContentSecurityPolicy)
	}

	ctx := newChromium(t)
	// Script errors, uncaught exceptions and CSP violations, as the browser reports them. A 401
	// from /me (source "network") is the page working, not a problem.
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return // the browser closed at the end of the test
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	problemsSoFar := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}

	shots, err := os.MkdirTemp("", "sessions-browser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	screenshot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name), png, 0o644)
		})
	}
	// step runs actions with a deadline of their own (the browser's context has none: it would
	// end the browser).
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	eval := func(js string) bool {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	logIn := func(pw string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SendKeys(chromedp.ID("email"), email),
			chromedp.SendKeys(chromedp.ID("password"), pw),
			chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
		)
	}

	step("open the page", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("login")))
	step("log in", logIn(password), chromedp.WaitVisible(chromedp.ID("account")), screenshot("1-logged-in.png"))
	if got := text("#user"); got != email {
		t.Errorf("after login the page shows %q, want %q", got, email)
	}

	// The cookie as the browser stored it, out of the page's reach.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := chromedp.Call(cctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.URL + "/"}})
	if err != nil {
		t.Fatalf("read cookies: %v", err)
	}
	// The session cookie and the device cookie (the login gate's), both out of scripts' reach.
	names := map[string]bool{}
	for _, ck := range res.Cookies {
		names[ck.Name] = true
		if !ck.Secure || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteLax || ck.Path != "/" || ck.Session {
			t.Errorf("browser cookie %s, want it persistent, Secure, HttpOnly, SameSite=Lax, Path=/", describeCookies([]*network.Cookie{ck}))
		}
	}
	if len(res.Cookies) != 2 || !names["__Host-session"] || !names["__Host-device"] {
		t.Errorf("browser cookies: got %s, want __Host-session and __Host-device", describeCookies(res.Cookies))
	}
	if eval(`document.cookie !== ""`) {
		t.Error("document.cookie: the page can read a cookie, want none (HttpOnly)")
	}

	step("reload while logged in", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("account")))
	if got := text("#user"); got != email {
		t.Errorf("after a reload the page shows %q, want %q", got, email)
	}

	// Where you are logged in: a second session, from another device, appears in the list and
	// ends with its button; the page's own session goes on.
	other := loginCookie(t, s, "second-device/1.0")
	step("list both sessions", chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`#sessions li[data-current="false"]`)), screenshot("2-sessions.png"))
	if got := text(`#sessions li[data-current="false"] span`); !strings.Contains(got, "second-device/1.0") {
		t.Errorf("the other session is listed as %q, want its user agent second-device/1.0", got)
	}
	if !strings.Contains(text(`#sessions li[data-current="true"] span`), "(this one)") {
		t.Error("the page's own session is not marked as this one")
	}
	step("end the other session", chromedp.Click(chromedp.CSS(`#sessions li[data-current="false"] button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#sessions li[data-current="false"]`)))
	if got := meWithCookie(t, s, other); got != http.StatusUnauthorized {
		t.Errorf("GET /me with the ended session's cookie: got %d, want 401", got)
	}
	if got := text("#user"); got != email {
		t.Errorf("after ending the other session the page shows %q, want %q still logged in", got, email)
	}
	step("log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login")))
	step("reload while logged out", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("login")))
	if !eval(`document.getElementById("account").hidden`) {
		t.Error("after logout and a reload the account section is shown, want the login form only")
	}

	step("wrong password", logIn("not the password"), chromedp.WaitVisible(chromedp.ID("message")),
		screenshot("3-wrong-password.png"))
	if got, want := text("#message"), "Wrong email or password."; got != want {
		t.Errorf("wrong password: the page says %q, want %q", got, want)
	}
	// waitText waits until the element sel says want.
	waitText := func(sel, want string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); text(sel) != want; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s says %q, want %q", sel, text(sel), want)
			}
		}
	}

	// The account flows: sign up, change the password, delete the account.
	if eval(`document.getElementById("signup").hidden`) {
		t.Fatal("logged out with SIGNUP=true, the page offers no sign-up form")
	}
	const newEmail, first, second = "grace@example.com", "lantern copper harbour velvet", "orchid tumble granite sail"
	step("sign up", chromedp.SendKeys(chromedp.ID("signup-email"), newEmail),
		chromedp.SendKeys(chromedp.ID("signup-password"), first),
		chromedp.Click(chromedp.CSS(`#signup button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("account")),
		screenshot("4-signed-up.png"))
	waitText("#user", newEmail)
	step("change the password", chromedp.SendKeys(chromedp.ID("current-password"), first),
		chromedp.SendKeys(chromedp.ID("new-password"), second),
		chromedp.Click(chromedp.CSS(`#change-password button[type="submit"]`)))
	waitText("#message", "Password changed. Every other session has ended.")
	waitText("#user", newEmail) // still logged in, under a new session
	step("delete the account", chromedp.SendKeys(chromedp.ID("delete-password"), second),
		chromedp.Click(chromedp.CSS(`#delete-account button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("login")))
	waitText("#message", "Your account is deleted.")
	if status := loginStatus(t, s, newEmail, second); status != http.StatusUnauthorized {
		t.Errorf("login to the deleted account: got %d, want 401", status)
	}

	if p := problemsSoFar(); len(p) > 0 {
		t.Errorf("the browser reported %d problems, want none: %q", len(p), p)
	}

	// Control: the policy is enforced and its violations are seen. An inline event handler must
	// neither run nor go unreported.
	eval(`document.body.insertAdjacentHTML("beforeend", '<img src="/missing.png" onerror="window.pwned = true">'), true`)
	deadline := time.Now().Add(10 * time.Second)
	for len(problemsSoFar()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if eval(`window.pwned === true`) {
		t.Error("an inline event handler ran: the Content-Security-Policy is not enforced")
	}
	if p := problemsSoFar(); len(p) == 0 || !strings.Contains(strings.Join(p, " "), "Content Security Policy") {
		t.Errorf("the blocked inline handler was not reported (got %q): this test would miss CSP violations", p)
	}
}

// loginCookie logs in over HTTP as another device with this User-Agent and returns its session
// cookie, as "name=value". (A cookie jar would not hand a Secure cookie back over plain HTTP.)
func loginCookie(t *testing.T, s *server, userAgent string) string {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL+"/login",
		strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	for _, c := range resp.Cookies() {
		if c.Value != "" && strings.HasSuffix(c.Name, "session") {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("login as %s: got %d and no session cookie", userAgent, resp.StatusCode)
	return ""
}

// loginStatus is the status of a login with email and pw over HTTP.
func loginStatus(t *testing.T, s *server, email, pw string) int {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL+"/login", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, pw)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	return resp.StatusCode
}

// meWithCookie answers the status of GET /me with cookie ("name=value").
func meWithCookie(t *testing.T, s *server, cookie string) int {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+"/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", cookie)
	resp := doRespReq(t, req)
	readBody(t, resp)
	return resp.StatusCode
}

func doRespReq(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// newChromium starts headless Chromium for the test and closes it when the test ends. It fails
// the test when no Chromium is installed (skips it outside CI).
func newChromium(t *testing.T) context.Context {
	t.Helper()
	bin := testenv.Tool(t, chromiumInstall, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		// The sandbox needs user namespaces, which containers and CI runners often forbid; the
		// browser only ever loads the test's own server.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", bin, err)
	}
	return ctx
}

func describeCookies(cs []*network.Cookie) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "[%s Secure=%v HttpOnly=%v SameSite=%q Path=%s Session=%v] ", c.Name, c.Secure, c.HTTPOnly, c.SameSite, c.Path, c.Session)
	}
	if len(cs) == 0 {
		return "none"
	}
	return b.String()
}

const (
	email    = "ada@example.com"
	password = "correct horse battery staple"
)

// server is one running instance of the real server.
type server struct{ URL string }

// baseEnv is the environment of a test server on dbURL: a free port on the loopback interface,
// no other listener, cookies over plain HTTP.
func baseEnv(dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":  dbURL,
		"HOST":          "127.0.0.1",
		"PORT":          "0",
		"COOKIE_SECURE": "false",
		"METRICS_ADDR":  "", // optional: metrics
	}
}

func lookupEnv(env map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// startServer runs app.Run serve with env, waits until it listens, and stops it when the test
// ends, failing the test unless Run returns nil.
func startServer(t *testing.T, env map[string]string, hooks app.Hooks) *server {
	t.Helper()
	readyc := make(chan string, 1)
	hooks.Ready = func(addr string, _ *storage.Store) { readyc <- addr }
	// A wait for a hashing slot long enough that a login never gets 503 on a loaded machine.
	hooks.Config = func(c *app.Config) { c.Login.HashWait = 10 * time.Second }
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"serve"}, lookupEnv(env), strings.NewReader(""), io.Discard, &stderr, hooks)
	}()
	var addr string
	select {
	case addr = <-readyc:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server not listening after 30s\n%s", stderr.String())
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server Run returned %v, want nil after a graceful shutdown\n%s", err, stderr.String())
		}
	})
	return &server{URL: "http://" + addr}
}

// mustCreateUser creates a user through the CLI, as an operator would.
func mustCreateUser(t *testing.T, dbURL, email, password string) {
	t.Helper()
	var out, log strings.Builder
	if err := app.Run(context.Background(), []string{"user", "create", email}, lookupEnv(baseEnv(dbURL)),
		strings.NewReader(password+"\n"), &out, &log, app.Hooks{}); err != nil {
		t.Fatalf("user create %s: %v\n%s", email, err, log.String())
	}
}

func doResp(t *testing.T, c *http.Client, method, url, contentType, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

// syncBuffer is a strings.Builder safe for the server's logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
