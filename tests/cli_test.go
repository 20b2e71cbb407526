package tests

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/app"
	"github.com/gofiber-template/sessions/internal/pgtest"
)

// buildBinary builds the program into a temporary directory and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sessions")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = ".." // the module's root, where main.go is
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// terminal runs the program with args on a pseudo-terminal (util-linux script), as a person
// at a terminal would, and returns a writer to the terminal and a reader of what it shows.
// Outside CI a machine without script skips the test; in CI it fails.
func terminal(t *testing.T, bin, dbURL string, args ...string) (keyboard io.WriteCloser, screen *bufio.Reader, wait func() error) {
	t.Helper()
	scriptPath, err := exec.LookPath("script")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("script (util-linux) not found: the terminal test needs it")
		}
		t.Fatal("script (util-linux) not found: install util-linux")
	}
	cmd := exec.Command(scriptPath, "-qec", strings.Join(append([]string{bin}, args...), " "), "/dev/null")
	cmd.Dir = t.TempDir() // no .env
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TERM=dumb", "DATABASE_URL=" + dbURL, "LOG_FORMAT=text"}
	keyboard, err = cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return keyboard, bufio.NewReader(out), cmd.Wait
}

// readUntil reads screen until it has shown want, and returns all it showed.
func readUntil(t *testing.T, screen *bufio.Reader, want string) string {
	t.Helper()
	var seen strings.Builder
	found := make(chan struct{})
	go func() {
		defer close(found)
		for !strings.Contains(seen.String(), want) {
			r, _, err := screen.ReadRune()
			if err != nil {
				return
			}
			seen.WriteRune(r)
		}
	}()
	select {
	case <-found:
	case <-time.After(30 * time.Second):
		t.Fatalf("terminal did not show %q in 30s", want)
	}
	if !strings.Contains(seen.String(), want) {
		t.Fatalf("terminal closed before showing %q; it showed %q", want, seen.String())
	}
	return seen.String()
}

// On a terminal, user create asks for the password twice, with a prompt and without echo, as
// passwd does; the password typed is the one that logs in.
func TestCLIPasswordOnTerminal(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	bin := buildBinary(t)
	const typed = "velvet harbour moth lantern"

	keyboard, screen, wait := terminal(t, bin, dbURL, "user", "create", "ada@example.com")
	shown := readUntil(t, screen, "password for ada@example.com: ")
	_, _ = io.WriteString(keyboard, typed+"\r")
	shown += readUntil(t, screen, "again: ")
	_, _ = io.WriteString(keyboard, typed+"\r")
	shown += readUntil(t, screen, "created user")
	if err := wait(); err != nil {
		t.Fatalf("user create on a terminal: %v; it showed %q", err, shown)
	}
	if strings.Contains(shown, "velvet") {
		t.Errorf("the terminal echoed the password: %q", shown)
	}
	s := startServer(t, baseEnv(dbURL), app.Hooks{})
	mustLogin(t, newClient(t), s, "ada@example.com", typed)

	// Two different passwords change nothing.
	keyboard, screen, wait = terminal(t, bin, dbURL, "user", "passwd", "ada@example.com")
	readUntil(t, screen, "password for ada@example.com: ")
	_, _ = io.WriteString(keyboard, "another quartz ember glow\r")
	readUntil(t, screen, "again: ")
	_, _ = io.WriteString(keyboard, "another quartz ember glov\r")
	shown = readUntil(t, screen, "differ")
	if err := wait(); err == nil {
		t.Errorf("user passwd with two different passwords: exit 0, want 1; it showed %q", shown)
	}
	mustLogin(t, newClient(t), s, "ada@example.com", typed)
}

// Piped in, the password is one line, with no prompt: scripts keep working as they did.
func TestCLIPasswordPiped(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	bin := buildBinary(t)
	cmd := exec.Command(bin, "user", "create", "ada@example.com")
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dbURL, "LOG_FORMAT=text"}
	cmd.Stdin = strings.NewReader("velvet harbour moth lantern\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "created user 1 ada@example.com") || strings.Contains(string(out), "password for") {
		t.Fatalf("user create with a piped password: got %q, %v; want created user and no prompt", out, err)
	}
	mustLogin(t, newClient(t), startServer(t, baseEnv(dbURL), app.Hooks{}), "ada@example.com", "velvet harbour moth lantern")
}
