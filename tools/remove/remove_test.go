package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber-template/sessions/tools/internal/project"
)

func TestStrip(t *testing.T) {
	tests := []struct {
		name, part, in, want string
		dropped              int
		whole                bool
	}{
		{"a marked line", "demo", "a\nb // optional: demo\nc\n", "a\nc\n", 1, false},
		{"the end of a comment", "demo", "a\nweb.Register(srv) // the page; optional: demo\nc\n", "a\nc\n", 1, false},
		{"other parts' lines stay", "bench", "a\nb // optional: demo\n", "a\nb // optional: demo\n", 0, false},
		{"a block", "metrics", "a\n\t// optional: metrics begin\n\tx\n\ty\n\t// optional: metrics end\nb\n", "a\nb\n", 4, false},
		{"YAML and shell", "bench", "a\n  - cd bench && go vet ./... # optional: bench\n# optional: bench begin\nx\n# optional: bench end\n", "a\n", 4, false},
		{"Markdown", "demo", "a\nOpen the page. <!-- optional: demo -->\n<!-- optional: demo begin -->\nx\n<!-- optional: demo end -->\n", "a\n", 4, false},
		{"a whole file", "metrics", "// optional: metrics file\n\npackage tests\n", "", 0, true},
		{"two blank lines become one", "bench", "a\n\n# optional: bench begin\nx\n# optional: bench end\n\nb\n", "a\n\nb\n", 4, false},
		{"a blank line at the top goes", "bench", "# optional: bench begin\nx\n# optional: bench end\n\nb\n", "b\n", 4, false},
		{"not at the end of the line", "demo", "see `// optional: demo` in the docs\n", "see `// optional: demo` in the docs\n", 0, false},
		{"not in a comment", "demo", "optional: demo\n", "optional: demo\n", 0, false},
		{"a prose colon", "demo", "// every field is optional.\n", "// every field is optional.\n", 0, false},
		{"CRLF", "demo", "a\r\nb // optional: demo\r\nc\r\n", "a\r\nc\r\n", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, whole, err := strip(tt.in, tt.part)
			if err != nil {
				t.Fatal(err)
			}
			if whole != tt.whole || (!tt.whole && (got != tt.want || n != tt.dropped)) {
				t.Errorf("strip(%q, %s): got %q, %d lines, whole %v; want %q, %d, %v", tt.in, tt.part, got, n, whole, tt.want, tt.dropped, tt.whole)
			}
		})
	}
}

func TestStripRefusesBadMarkers(t *testing.T) {
	for name, in := range map[string]string{
		"an unknown part":        "x // optional: metric\n",
		"a begin without an end": "// optional: demo begin\nx\n",
		"an end without a begin": "x\n// optional: demo end\n",
		"nested blocks":          "// optional: demo begin\n// optional: bench begin\n// optional: bench end\n// optional: demo end\n",
		"the wrong end":          "// optional: demo begin\nx\n// optional: bench end\n",
	} {
		t.Run(name, func(t *testing.T) {
			for _, p := range parts { // whichever part is being removed
				if _, _, _, err := strip(in, p.name); err == nil {
					t.Errorf("strip(%q, %s): got no error, want one", in, p.name)
				}
			}
		})
	}
}

// TestProjectMarkers reads the project itself: every marker names a part and every block is
// closed, and each part is there to remove.
func TestProjectMarkers(t *testing.T) {
	root := projectRoot(t)
	for _, p := range parts {
		pl, err := planRemoval(root, p)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		for _, name := range p.paths {
			if !slices.Contains(pl.remove, name) {
				t.Errorf("%s: %s, in the table of the part's own files, is not in the project", p.name, name)
			}
		}
		if len(pl.edits) == 0 {
			t.Errorf("%s: no line anywhere is marked %q", p.name, "optional: "+p.name)
		}
	}
}

// leftover is a mention of a part that must not survive its removal: a pattern, and the files
// it is checked in (all but tools/, where the tools' own tables and test inputs live, and
// go.sum files).
type leftover struct {
	pattern *regexp.Regexp
	skip    func(name string) bool // nil: every file
	only    []string               // when set, these files alone
}

var leftovers = map[string][]leftover{
	"demo": {
		{pattern: regexp.MustCompile(`(?i)demo page|chromedp|chromium|web\.Register|TestBrowser|/web"`)},
	},
	"metrics": {
		{pattern: regexp.MustCompile(`(?i)prometheus|METRICS_ADDR|MetricsReady|startMetrics|/metrics\b|:9091`), skip: measured},
		{pattern: regexp.MustCompile(`(?i)\bmetrics?\b`), skip: func(name string) bool {
			return measured(name) || strings.HasSuffix(name, "go.mod") // go.opentelemetry.io/otel/metric
		}},
	},
	"bench": {
		{pattern: regexp.MustCompile(`(?i)bench/|task bench|load benchmark|benchmarks\.md`)},
		{pattern: regexp.MustCompile(`\bbench\b`), only: []string{
			"Taskfile.yml", ".golangci.yml", ".gitignore", ".dockerignore", ".github/workflows/ci.yml", ".ci/run", "Dockerfile"}},
	},
}

// measured reports whether name is the load benchmark's report, which says what the server did
// while it was measured.
func measured(name string) bool {
	return name == "bench/README.md" || name == "docs/benchmarks.md"
}

// heavy serializes the lint and the tests of the copies: golangci-lint refuses to run beside
// another golangci-lint, and the template's tests, some of which bound waits (a login's wait
// for a hashing slot), must see no more load than task test does.
var heavy sync.Mutex

// TestRemoveOnACopy removes each part from a copy of the project (the files git tracks, as they
// are on disk), in parallel: the remover refuses a dirty tree, then takes the part out through
// task remove; a second run finds nothing to do; no mention of the part is left; every go.mod
// is tidy; and the copy builds, passes task lint (vet, golangci-lint and gofmt on every module)
// and go test -short against the local PostgreSQL. A last copy loses all three parts, one after
// the other, and still builds and vets. A few minutes: the copies build from scratch.
func TestRemoveOnACopy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds, lints and tests a copy of the project per part: run without -short")
	}
	root := projectRoot(t)
	// The refusal runs a build of the tool, since go run adds a line of its own ("exit status
	// 1") to a failing program's output.
	tool := filepath.Join(t.TempDir(), "remove")
	mustRun(t, filepath.Join(root, "tools"), "go", "build", "-o", tool, "./remove")

	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			dir := copyProject(t, root)
			removeOnce(t, dir, tool, p)
			mustRun(t, dir, "go", "build", "./...")
			heavy.Lock()
			defer heavy.Unlock()
			// golangci-lint's lock file is in the temporary folder: one of the copy's own keeps it
			// clear of any other golangci-lint on the machine.
			mustRun(t, dir, "env", "TMPDIR="+t.TempDir(), "go", "tool", "-modfile=tools/go.mod", "task", "lint")
			mustRun(t, dir, "go", "test", "-short", "-count=1", "./...")
		})
	}
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		dir := copyProject(t, root)
		for _, p := range parts {
			removeOnce(t, dir, tool, p)
			mustRun(t, dir, "git", "add", "-A")
			mustRun(t, dir, "git", "commit", "-qm", "remove "+p.name)
		}
		mustRun(t, dir, "go", "build", "./...")
		for _, mod := range modules(t, dir) {
			mustRun(t, filepath.Join(dir, mod), "go", "vet", "./...")
		}
	})
}

// removeOnce takes p out of the copy in dir and checks what the remover did, short of building.
func removeOnce(t *testing.T, dir, tool string, p part) {
	t.Helper()
	scratch := filepath.Join(dir, "scratch.txt")
	if err := os.WriteFile(scratch, []byte("work in progress\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := runIn(filepath.Join(dir, "tools"), tool, p.name)
	if err == nil || !oneLine(stderr, "uncommitted changes") {
		t.Errorf("remove %s on a dirty tree: got %v and stderr %q, want a failure and one line about uncommitted changes", p.name, err, stderr)
	}
	if err := os.Remove(scratch); err != nil {
		t.Fatal(err)
	}
	if s := mustRun(t, dir, "git", "status", "--porcelain"); s != "" {
		t.Fatalf("the refused run changed the tree: %s", s)
	}

	out := mustRun(t, dir, "go", "tool", "-modfile=tools/go.mod", "task", "remove", "--", p.name)
	t.Logf("task remove -- %s:\n%s", p.name, out)
	if !strings.Contains(out, "remove: removed "+p.name) {
		t.Errorf("task remove -- %s: got %q, want it to say what it removed", p.name, out)
	}
	for _, name := range p.paths {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", name, err)
		}
	}
	diff := mustRun(t, dir, "git", "status", "--porcelain")
	stdout, stderr, err := runIn(filepath.Join(dir, "tools"), tool, p.name)
	if err != nil || !strings.Contains(stdout, "nothing to do") {
		t.Errorf("second run: got %v, %q %q; want it to say nothing to do", err, stdout, stderr)
	}
	if got := mustRun(t, dir, "git", "status", "--porcelain"); got != diff {
		t.Errorf("the second run changed the tree")
	}

	for _, name := range trackedFiles(t, dir) {
		if strings.HasPrefix(name, "tools/") || strings.HasSuffix(name, "go.sum") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed, not yet committed
		} else if err != nil {
			t.Fatal(err)
		}
		for _, l := range leftovers[p.name] {
			if l.skip != nil && l.skip(name) || l.only != nil && !slices.Contains(l.only, name) {
				continue
			}
			for i, line := range strings.Split(string(data), "\n") {
				if m := l.pattern.FindString(line); m != "" {
					t.Errorf("%s:%d still mentions %q: %s", name, i+1, m, strings.TrimSpace(line))
				}
			}
		}
	}

	// The remover tidied the modules whose requirements the part brought: go mod tidy finds
	// nothing more to do there, and the leftovers above found none of the part's modules.
	for _, mod := range p.tidy {
		if !project.IsFile(filepath.Join(dir, mod, "go.mod")) {
			continue
		}
		before := mustRun(t, dir, "git", "diff", "--", mod)
		mustRun(t, filepath.Join(dir, mod), "go", "mod", "tidy")
		if after := mustRun(t, dir, "git", "diff", "--", mod); after != before {
			t.Errorf("%s: go mod tidy changed its go.mod or go.sum after remove %s", mod, p.name)
		}
	}
}

// modules returns the folders of the copy that hold a go.mod, tools/ aside.
func modules(t *testing.T, dir string) []string {
	t.Helper()
	var mods []string
	for _, name := range trackedFiles(t, dir) {
		if filepath.Base(name) == "go.mod" && !strings.HasPrefix(name, "tools/") && project.IsFile(filepath.Join(dir, name)) {
			mods = append(mods, filepath.Dir(name))
		}
	}
	return mods
}

func projectRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := project.Root(wd)
	if err != nil {
		t.Fatal(err)
	}
	return root
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
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=remove test", "GIT_AUTHOR_EMAIL=remove@example.com",
		"GIT_COMMITTER_NAME=remove test", "GIT_COMMITTER_EMAIL=remove@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func mustRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	stdout, stderr, err := runIn(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s%s", name, strings.Join(args, " "), dir, err, stdout, stderr)
	}
	return stdout
}

// oneLine reports whether s is one line, from remove, containing want.
func oneLine(s, want string) bool {
	s = strings.TrimSuffix(s, "\n")
	return strings.HasPrefix(s, "remove: ") && !strings.Contains(s, "\n") && strings.Contains(s, want)
}
