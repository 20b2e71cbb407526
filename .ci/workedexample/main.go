// Command workedexample checks the worked examples of docs/examples the way a reader follows
// them: for each, it copies the repository (its committed HEAD) to a temporary folder, writes
// every file the example shows there (each code block right after a line naming its path in
// backquotes, in new folders too), applies each diff block to the file it names (every "-" line
// must be exactly one line of that file; the "+" lines replace it), adds to app/server.go what a
// plain block adds there (a block of import paths to its imports, other lines after the last
// route), then vets the copy and runs the example's checks there.
//
// Run it from the repository root: go run ./.ci/workedexample
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// example is one worked example and the commands that check it in the copy.
type example struct {
	file   string
	checks [][]string
}

var examples = []example{
	{"docs/examples/notes.md", [][]string{
		{"go", "vet", "./..."},
		{"go", "test", "-count=1", "./migrations"},
		{"go", "test", "-count=1", "-run", "^TestNotes$", "-v", "./tests"},
	}},
	// A field on the user changes GET /me: the template's own tests must pass unchanged.
	{"docs/examples/user-field.md", [][]string{
		{"go", "vet", "./..."},
		{"go", "test", "-count=1", "./migrations"},
		{"go", "test", "-count=1", "-run", "^TestDisplayName$", "-v", "./tests"},
		{"go", "test", "-race", "-short", "-count=1", "./..."},
	}},
}

func main() {
	for _, ex := range examples {
		if err := check(ex); err != nil {
			fmt.Fprintf(os.Stderr, "workedexample: %s: %v\n", ex.file, err)
			os.Exit(1)
		}
	}
}

// block is a code block of an example and the path it belongs to; diff says it is a diff.
type block struct {
	path, code string
	diff       bool
}

var (
	pathLine      = regexp.MustCompile("^`([A-Za-z0-9_./-]+\\.(go|sql))`$")
	routeLine     = regexp.MustCompile(`^\tsrv\.(Get|Post|Put|Patch|Delete)\(`)
	importLine    = regexp.MustCompile(`^\t"[^"]+"$`)
	migrationFile = regexp.MustCompile(`^migrations/\d+_(.+\.(up|down)\.sql)$`)
)

// nextMigration returns the number after the highest migration in dir.
func nextMigration(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	highest := 0
	for _, e := range entries {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "%d_", &n); err == nil && n > highest {
			highest = n
		}
	}
	return highest + 1, nil
}

func check(ex example) error {
	text, err := os.ReadFile(ex.file)
	if err != nil {
		if os.IsNotExist(err) {
			// A project made from the template may drop an example: then there is nothing to check.
			fmt.Println(ex.file, "is gone: nothing to check")
			return nil
		}
		return err
	}
	blocks := parse(string(text))
	if len(blocks) < 4 {
		return fmt.Errorf("found %d code blocks with a path, want at least 4", len(blocks))
	}
	dir, err := os.MkdirTemp("", "workedexample-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := sh(".", "git", "clone", "--quiet", ".", dir); err != nil {
		return err
	}
	next, err := nextMigration(filepath.Join(dir, "migrations"))
	if err != nil {
		return err
	}
	for _, b := range blocks {
		// The example's migration takes the next free number, whatever the text says, so
		// that the check survives the project's own migrations.
		if m := migrationFile.FindStringSubmatch(b.path); m != nil {
			b.path = fmt.Sprintf("migrations/%04d_%s", next, m[1])
		}
		dst := filepath.Join(dir, b.path)
		switch {
		case b.diff:
			if err := applyDiff(dst, b.code); err != nil {
				return fmt.Errorf("%s: %w", b.path, err)
			}
			fmt.Println("changed", b.path)
			continue
		case b.path == "app/server.go":
			insert := insertRoutes
			if isImports(b.code) {
				insert = insertImports
			}
			if err := insert(dst, b.code); err != nil {
				return err
			}
			continue
		}
		if _, err := os.Stat(dst); err == nil {
			return fmt.Errorf("%s already exists in the template; a plain block must add a new file", b.path)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, []byte(b.code), 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", b.path)
	}
	for _, args := range ex.checks {
		if err := sh(dir, args...); err != nil {
			return err
		}
	}
	fmt.Println(ex.file + ": the example builds, migrates up and down, and its checks pass")
	return nil
}

// applyDiff replaces, in the file at path, the one line equal to the diff's "-" lines (in
// order, consecutive) with its "+" lines.
func applyDiff(path, diff string) error {
	var minus, plus []string
	for l := range strings.Lines(diff) {
		l = strings.TrimSuffix(l, "\n")
		switch {
		case strings.HasPrefix(l, "-"):
			minus = append(minus, l[1:])
		case strings.HasPrefix(l, "+"):
			plus = append(plus, l[1:])
		default:
			return fmt.Errorf("diff line %q is neither - nor +", l)
		}
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	old := strings.Join(minus, "\n") + "\n"
	if n := strings.Count(string(src), old); n != 1 {
		return fmt.Errorf("the lines to replace occur %d times, want once: %q", n, old)
	}
	return os.WriteFile(path, []byte(strings.Replace(string(src), old, strings.Join(plus, "\n")+"\n", 1)), 0o644)
}

// parse finds each fenced code block whose nearest non-blank line before it is a path in
// backquotes.
func parse(section string) []block {
	var (
		blocks []block
		path   string
		code   *strings.Builder
		diff   bool
	)
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case code != nil && line == "```":
			blocks = append(blocks, block{path, code.String(), diff})
			code, path = nil, ""
		case code != nil:
			code.WriteString(line + "\n")
		case strings.HasPrefix(line, "```") && path != "":
			code = &strings.Builder{}
			diff = line == "```diff"
		case pathLine.MatchString(line):
			path = pathLine.FindStringSubmatch(line)[1]
		case strings.TrimSpace(line) != "":
			path = ""
		}
	}
	return blocks
}

// insertRoutes puts routes after the last route line of newServer in the file at path.
func insertRoutes(path, routes string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(src), "\n")
	last := -1
	for i, l := range lines {
		if routeLine.MatchString(l) {
			last = i
		}
	}
	if last < 0 {
		return fmt.Errorf("%s: no route line to add the routes after", path)
	}
	out := strings.Join(lines[:last+1], "") + routes + strings.Join(lines[last+1:], "")
	fmt.Println("added the routes to", path)
	return os.WriteFile(path, []byte(out), 0o644)
}

// isImports reports whether code is import paths only, one a line.
func isImports(code string) bool {
	for l := range strings.Lines(code) {
		if !importLine.MatchString(strings.TrimRight(l, "\n")) {
			return false
		}
	}
	return code != ""
}

// insertImports puts import paths at the end of the import block of the file at path.
func insertImports(path, imports string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(src)
	i := strings.Index(s, "\nimport (\n")
	if i < 0 {
		return fmt.Errorf("%s: no import block to add %q to", path, imports)
	}
	end := i + strings.Index(s[i:], "\n)\n") + 1
	fmt.Println("added the imports to", path)
	return os.WriteFile(path, []byte(s[:end]+imports+s[end:]), 0o644)
}

func sh(dir string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return nil
}
