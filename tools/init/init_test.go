package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber-template/sessions/tools/internal/project"
)

// TestInitOnACopy copies the project (the files git tracks, as they are on disk) into a fresh
// repository, refuses bad paths and a dirty tree there, renames it, and then builds and vets
// the copy, runs its binary and its end-to-end tests (./tests/..., against the local
// PostgreSQL like the project's own), checks that the old module path is gone and that a
// second run changes nothing. Takes a minute or two: most of it is the end-to-end tests.
func TestInitOnACopy(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := project.Root(wd)
	if err != nil {
		t.Fatal(err)
	}
	oldPath, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	newPath, newName := "example.com/myapp", "myapp"
	if oldPath == newPath {
		newPath, newName = "example.com/otherapp", "otherapp"
	}
	dir := copyProject(t, root)
	status := func() string { return mustRun(t, dir, "git", "status", "--porcelain") }
	// The refusals run a build of the copy's tool, since go run adds a line of its own
	// ("exit status 1") to a failing program's output.
	tool := filepath.Join(t.TempDir(), "init")
	mustRun(t, filepath.Join(dir, "tools"), "go", "build", "-o", tool, "./init")
	initCmd := func(path string) (stdout, stderr string, err error) {
		return runIn(filepath.Join(dir, "tools"), tool, path)
	}

	t.Run("refuses an invalid module path", func(t *testing.T) {
		for _, bad := range []string{"myapp", "example.com/My App", "-x", "example.com/myapp/", "", "https://example.com/myapp"} {
			_, stderr, err := initCmd(bad)
			if err == nil || !oneLine(stderr, "is not a valid module path") {
				t.Errorf("init %q: got %v and stderr %q, want a failure and one line saying the path is invalid", bad, err, stderr)
			}
		}
		if s := status(); s != "" {
			t.Errorf("the tree changed: %s", s)
		}
	})

	t.Run("refuses a tree with uncommitted changes", func(t *testing.T) {
		scratch := filepath.Join(dir, "scratch.txt")
		if err := os.WriteFile(scratch, []byte("work in progress\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, err := initCmd(newPath)
		if err == nil || !oneLine(stderr, "uncommitted changes") {
			t.Errorf("got %v and stderr %q, want a failure and one line about uncommitted changes", err, stderr)
		}
		if err := os.Remove(scratch); err != nil {
			t.Fatal(err)
		}
		if s := status(); s != "" {
			t.Errorf("the tree changed: %s", s)
		}
	})

	stdout, stderr, err := runIn(dir, "go", "-C", "tools", "run", "./init", newPath)
	if err != nil {
		t.Fatalf("init %s: %v\n%s%s", newPath, err, stdout, stderr)
	}
	t.Logf("init %s:\n%s", newPath, stdout)
	diff := mustRun(t, dir, "git", "diff")

	t.Run("renames", func(t *testing.T) {
		for file, want := range map[string]string{
			"go.mod":       newPath,
			"bench/go.mod": newPath + "/bench",
			"tools/go.mod": newPath + "/tools",
		} {
			if file != "go.mod" && !project.IsFile(filepath.Join(dir, file)) {
				continue // an optional part that was removed (tools/remove)
			}
			if got, err := modulePath(filepath.Join(dir, file)); err != nil || got != want {
				t.Errorf("%s: module %q (%v), want %q", file, got, err, want)
			}
		}
		for _, name := range trackedFiles(t, dir) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(oldPath)) {
				t.Errorf("%s still mentions %s", name, oldPath)
			}
		}
		for _, name := range strings.Fields(mustRun(t, dir, "git", "diff", "--name-only")) {
			if strings.HasSuffix(name, ".sql") || strings.Contains("/"+name, "/testdata/") {
				t.Errorf("%s changed; SQL and test data are not the module's name", name)
			}
		}
		// Every line init wrote names the new module or binary: nothing else was touched.
		for _, line := range strings.Split(mustRun(t, dir, "git", "diff", "-U0"), "\n") {
			if strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "+++") &&
				!strings.Contains(line, newPath) && !strings.Contains(line, newName) {
				t.Errorf("changed line names neither %s nor %s: %q", newPath, newName, line)
			}
		}
	})

	t.Run("builds, vets and runs", func(t *testing.T) {
		mustRun(t, dir, "go", "build", "./...")
		mustRun(t, dir, "go", "vet", "./...")
		if project.IsFile(filepath.Join(dir, "bench", "go.mod")) { // unless removed (tools/remove)
			mustRun(t, dir, "go", "-C", "bench", "vet", "./...")
		}
		mustRun(t, dir, "go", "-C", "tools", "vet", "./...")
		bin := filepath.Join(t.TempDir(), newName)
		mustRun(t, dir, "go", "build", "-o", bin, ".")
		if out := mustRun(t, dir, bin, "help"); !strings.HasPrefix(out, "usage: "+newName+" [command]\n") {
			t.Errorf("%s help: got %q, want the usage of %s", newName, out, newName)
		}
		_, stderr, err := runIn(dir, bin, "frobnicate")
		if want := newName + `: unknown command "frobnicate"; run '` + newName + ` help' for the commands`; err == nil || strings.TrimSpace(stderr) != want {
			t.Errorf("%s frobnicate: got %v and %q, want a failure and %q", newName, err, stderr, want)
		}
	})

	t.Run("end-to-end tests pass", func(t *testing.T) {
		mustRun(t, dir, "go", "test", "-count=1", "./tests/...")
		// The page in a real browser (its own module): the page's routes must survive the rename.
		mustRun(t, dir, "go", "-C", "tests/system", "test", "-count=1", "./...")
	})

	t.Run("a second run changes nothing", func(t *testing.T) {
		out := mustRun(t, dir, "go", "tool", "-modfile=tools/go.mod", "task", "init", "--", newPath)
		if !strings.Contains(out, "nothing to do") {
			t.Errorf("second run: got %q, want it to say nothing to do", out)
		}
		if got := mustRun(t, dir, "git", "diff"); got != diff {
			t.Errorf("the second run changed the tree")
		}
	})

	t.Run("refuses to rename over uncommitted changes", func(t *testing.T) {
		_, stderr, err := initCmd("example.com/other")
		if err == nil || !oneLine(stderr, "uncommitted changes") {
			t.Errorf("got %v and stderr %q, want a failure and one line about uncommitted changes", err, stderr)
		}
		if got := mustRun(t, dir, "git", "diff"); got != diff {
			t.Errorf("the refused run changed the tree")
		}
	})

	t.Run("renames a renamed project", func(t *testing.T) {
		mustRun(t, dir, "git", "commit", "-qam", "init")
		if _, stderr, err := initCmd("example.com/other/v2"); err != nil {
			t.Fatalf("init example.com/other/v2: %v: %s", err, stderr)
		}
		if got, err := modulePath(filepath.Join(dir, "go.mod")); err != nil || got != "example.com/other/v2" {
			t.Errorf("go.mod: module %q (%v), want example.com/other/v2", got, err)
		}
		if _, _, err := runIn(dir, "git", "grep", "-q", `Name = "other"`, "--", "app"); err != nil {
			t.Errorf("app.Name is not other: git grep: %v", err)
		}
		for _, name := range trackedFiles(t, dir) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(newPath+"/")) || bytes.Contains(data, []byte(newPath+"\n")) {
				t.Errorf("%s still mentions %s", name, newPath)
			}
		}
		mustRun(t, dir, "go", "build", "./...")
	})
}

// copyProject copies the files git tracks under root, as they are on disk, into a new
// repository with one commit, and returns its folder.
func copyProject(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range trackedFiles(t, root) {
		src := filepath.Join(root, filepath.FromSlash(name))
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, dir, "git", "init", "-q")
	mustRun(t, dir, "git", "add", "-A")
	mustRun(t, dir, "git", "commit", "-qm", "template")
	return dir
}

func trackedFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := project.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// runIn runs a command in dir, with an author for git commits.
func runIn(dir, name string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=init test", "GIT_AUTHOR_EMAIL=init@example.com",
		"GIT_COMMITTER_NAME=init test", "GIT_COMMITTER_EMAIL=init@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func mustRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	stdout, stderr, err := runIn(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// oneLine reports whether s is one line, from init, containing want.
func oneLine(s, want string) bool {
	s = strings.TrimSuffix(s, "\n")
	return strings.HasPrefix(s, "init: ") && !strings.Contains(s, "\n") && strings.Contains(s, want)
}
