// Package testenv says what a test needs besides Go and PostgreSQL, so that task test runs on
// any developer's machine and CI runs everything.
//
// A test that needs a program the machine may lack (PgBouncer, Docker, a browser) asks Tool for
// it: outside CI a missing program skips the test with one line saying what to install; with
// the CI variable set it fails the test, since CI installs everything (.ci/run). A slow test
// (fault injection, soak, load, its own PostgreSQL cluster) calls Slow: go test -short (task
// test) skips it; task test:all and CI run it.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run in CI (the CI variable is set and not "false"), where
// nothing may be skipped for a missing program.
func InCI() bool {
	v, ok := os.LookupEnv("CI")
	return ok && v != "" && v != "false" && v != "0"
}

// Tool returns the path of the first of names found on PATH or in /usr/sbin (where Debian puts
// daemons such as pgbouncer). When none is found it skips the test with one line naming what to
// install, or fails it in CI.
func Tool(t testing.TB, install string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := filepath.Join("/usr/sbin", name); isExecutable(p) {
			return p
		}
	}
	if InCI() {
		t.Fatalf("%s not installed, and CI runs every test: %s", names[0], install)
	}
	t.Skipf("skipped: needs %s; install it to run this test (%s)", names[0], install)
	return ""
}

// Slow skips the test under go test -short (task test's fast loop) and says where it runs.
func Slow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow test: task test:all runs it")
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
