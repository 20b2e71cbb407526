package system

import (
	"bytes"
	"debug/elf"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gofiber-template/sessions/app"
)

// These tests check the deployment files (Dockerfile, compose.yaml) where no Docker engine is
// needed: the Dockerfile's build command makes a static binary whose health command works, and
// compose.yaml wires the server to PostgreSQL with valid settings and health checks.

// dockerBuild returns the Dockerfile's `go build` command (from CGO_ENABLED on), with its
// continuation lines joined.
func dockerBuild(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.ReplaceAll(string(b), "\\\n", " ")
	m := regexp.MustCompile(`(?m)^RUN .*?(CGO_ENABLED=0 go build .*)$`).FindStringSubmatch(joined)
	if m == nil {
		t.Fatal("Dockerfile: no RUN ... CGO_ENABLED=0 go build line")
	}
	return m[1]
}

// TestDockerBuildIsStatic runs the Dockerfile's build command here and checks that the binary
// needs no libc (the runtime image has none), carries no path of this machine, and that its
// health command exits 1 when no server answers.
func TestDockerBuildIsStatic(t *testing.T) {
	t.Parallel()
	cmdline := dockerBuild(t)
	out := "/out/" + app.Name
	for _, flag := range []string{"-trimpath", "-o " + out} {
		if !strings.Contains(cmdline, flag) {
			t.Fatalf("Dockerfile build %q: want %s", cmdline, flag)
		}
	}
	bin := filepath.Join(t.TempDir(), app.Name)
	build := exec.Command("sh", "-c", strings.Replace(cmdline, out, bin, 1))
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has a program interpreter: it is dynamically linked, want static")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("binary imports libraries %v (%v), want none", libs, err)
	}
	wd, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(wd)) {
		t.Errorf("binary contains the source path %s: -trimpath did not apply", wd)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	health := exec.Command(bin, "health")
	health.Dir = t.TempDir() // no .env
	health.Env = []string{"PORT=" + port}
	output, err := health.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(output), "/readyz") {
		t.Errorf("%s health with nothing on port %s: got %v, output %q; want exit status 1 naming /readyz", app.Name, port, err, output)
	}
}

// compose is the part of compose.yaml the tests read.
type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	db, ok := c.Services["postgres"]
	if !ok || db.Image == "" || len(db.Healthcheck.Test) == 0 {
		t.Fatalf("compose.yaml: want a service postgres with an image and a health check, got %+v", db)
	}
	srv, ok := c.Services["app"]
	if !ok || srv.Build == nil {
		t.Fatalf("compose.yaml: want a service app built from the Dockerfile, got %+v", srv)
	}
	if got := srv.DependsOn["postgres"].Condition; got != "service_healthy" {
		t.Errorf("compose.yaml app depends_on postgres: got condition %q, want service_healthy", got)
	}
	if want := []string{"CMD", "/" + app.Name, "health"}; !slices.Equal(srv.Healthcheck.Test, want) {
		t.Errorf("compose.yaml app healthcheck: got %q, want %q", srv.Healthcheck.Test, want)
	}

	// The app's environment is a valid configuration, of variables the server knows, on the
	// postgres service.
	example, err := os.ReadFile(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range srv.Environment {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `=`).Match(example) {
			t.Errorf("compose.yaml app sets %s, which .env.example does not list", name)
		}
	}
	cfg, err := app.LoadConfig(func(name string) (string, bool) {
		v, ok := srv.Environment[name]
		return v, ok
	})
	if err != nil {
		t.Fatalf("compose.yaml app environment: %v", err)
	}
	if u, err := url.Parse(cfg.DatabaseURL); err != nil || u.Hostname() != "postgres" {
		t.Errorf("compose.yaml app DATABASE_URL %q: want the host postgres (the service)", cfg.DatabaseURL)
	}
	if want := "127.0.0.1:" + strconv.Itoa(cfg.Port) + ":" + strconv.Itoa(cfg.Port); !slices.Contains(srv.Ports, want) {
		t.Errorf("compose.yaml app ports %q: want %q (PORT, on the loopback interface only)", srv.Ports, want)
	}
}
