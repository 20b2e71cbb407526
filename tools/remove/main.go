// Command remove takes an optional part out of the project in one step. From the repository's
// root:
//
//	go -C tools run ./remove demo      the demo page (GET /, web/) and its browser test
//	go -C tools run ./remove metrics   the Prometheus metrics (METRICS_ADDR, GET /metrics)
//	go -C tools run ./remove bench     the load benchmark (bench/, task bench)
//	go tool -modfile=tools/go.mod task remove -- NAME   (the same, through Task)
//
// It refuses to change a tree with uncommitted changes, so that `git diff` and `git status`
// show exactly what it did and `git checkout . && git clean -fd` undoes it. Run twice, the
// second run finds nothing to do. docs/removing.md says what each part takes with it.
//
// It deletes the part's own folders and files (the table parts), then, in every text file git
// tracks (outside tools/remove), what is marked for the part with a comment (after //, # or
// <!--) that ends its line:
//
//   - a line ending in "optional: NAME" (alone or at the end of a comment) goes;
//   - a line ending in "optional: NAME begin", the next ending in "optional: NAME end", and
//     every line between them go;
//   - a file with a line ending in "optional: NAME file" goes whole.
//
// Where a deletion leaves two blank lines in a row, one goes too; Go files it changed are
// gofmt'ed. Then it runs go mod tidy in each module whose requirements the part may have
// brought. The tree it leaves builds, vets, lints and passes its tests (TestRemoveOnACopy).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/format"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gofiber-template/sessions/tools/internal/project"
)

// part is one optional part of the template.
type part struct {
	name  string
	what  string   // for the usage and the report
	paths []string // the part's own folders and files, slash-separated from the root
	tidy  []string // modules (folders holding a go.mod) whose requirements may shrink
}

var parts = []part{
	{
		name:  "demo",
		what:  "the demo page (GET /, web/) and its browser test",
		paths: []string{"web", "tests/system/browser_test.go"},
		tidy:  []string{"tests/system"},
	},
	{
		name:  "metrics",
		what:  "the Prometheus metrics (METRICS_ADDR, GET /metrics)",
		paths: []string{"app/metrics.go", "app/metrics_test.go"},
		tidy:  []string{".", "tests/system", "bench"},
	},
	{
		name:  "bench",
		what:  "the load benchmark (bench/, task bench)",
		paths: []string{"bench", "docs/benchmarks.md"},
	},
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "remove:", err)
		os.Exit(1)
	}
}

func usage() error {
	var b strings.Builder
	b.WriteString("usage: go -C tools run ./remove NAME, where NAME is one of")
	for i, p := range parts {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s (%s)", p.name, p.what)
	}
	return errors.New(b.String())
}

// run removes the part named in args from the project whose root holds the working directory
// (see findRoot), and reports what it did on out.
func run(args []string, out io.Writer) error {
	if len(args) != 1 {
		return usage()
	}
	i := slices.IndexFunc(parts, func(p part) bool { return p.name == args[0] })
	if i < 0 {
		return usage()
	}
	p := parts[i]
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := project.Root(wd)
	if err != nil {
		return err
	}
	plan, err := planRemoval(root, p)
	if err != nil {
		return err
	}
	if plan.empty() {
		fmt.Fprintf(out, "remove: nothing to do: %s is not in the project\n", p.name)
		return nil
	}
	if dirty, err := project.Uncommitted(root); err != nil {
		return err
	} else if dirty != "" {
		return fmt.Errorf("the tree has uncommitted changes (%s); commit or stash them first, so that git diff shows what remove changes", dirty)
	}
	for _, name := range plan.remove {
		if err := os.RemoveAll(filepath.Join(root, filepath.FromSlash(name))); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-40s removed\n", name)
	}
	for _, e := range plan.edits {
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(e.name)), []byte(e.text), e.mode); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-40s %s\n", e.name, project.Plural(e.lines, "line")+" removed")
	}
	for _, dir := range p.tidy {
		if !project.IsFile(filepath.Join(root, filepath.FromSlash(dir), "go.mod")) {
			continue
		}
		if _, err := project.Command(filepath.Join(root, filepath.FromSlash(dir)), "go", "mod", "tidy"); err != nil {
			return fmt.Errorf("removed %s, but go mod tidy failed in %s (run it there yourself): %w", p.name, dir, err)
		}
		fmt.Fprintf(out, "  %-40s go mod tidy\n", path.Join(dir, "go.mod"))
	}
	fmt.Fprintf(out, "remove: removed %s: %s; review with git status and git diff, then commit\n", p.name, p.what)
	return nil
}

// plan is what removing a part changes: paths deleted whole, and files rewritten.
type plan struct {
	remove []string
	edits  []edit
}

type edit struct {
	name  string
	text  string
	lines int
	mode  os.FileMode
}

func (p plan) empty() bool { return len(p.remove) == 0 && len(p.edits) == 0 }

// planRemoval works out what removing p changes under root, without changing anything. It
// fails on a marker that names no part, or a begin without its end, in any file: a tree it
// cannot read whole is left as it is.
func planRemoval(root string, p part) (plan, error) {
	var pl plan
	for _, name := range p.paths {
		if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(name))); err == nil {
			pl.remove = append(pl.remove, name)
		} else if !errors.Is(err, os.ErrNotExist) {
			return plan{}, err
		}
	}
	files, err := project.Files(root)
	if err != nil {
		return plan{}, err
	}
	for _, name := range files {
		if name == "tools/remove" || strings.HasPrefix(name, "tools/remove/") || within(name, pl.remove) {
			continue
		}
		full := filepath.Join(root, filepath.FromSlash(name))
		fi, err := os.Lstat(full)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted, not yet committed: the clean-tree check reports it
			}
			return plan{}, err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return plan{}, err
		}
		if bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data) {
			continue // binary
		}
		text, n, whole, err := strip(string(data), p.name)
		if err != nil {
			return plan{}, fmt.Errorf("%s: %w", name, err)
		}
		switch {
		case whole:
			pl.remove = append(pl.remove, name)
		case n > 0:
			if strings.HasSuffix(name, ".go") {
				src, err := format.Source([]byte(text))
				if err != nil {
					return plan{}, fmt.Errorf("%s: without the lines marked %q it is not valid Go: %w", name, "optional: "+p.name, err)
				}
				text = string(src)
			}
			pl.edits = append(pl.edits, edit{name, text, n, fi.Mode().Perm()})
		}
	}
	return pl, nil
}

// within reports whether name is one of dirs or inside one of them.
func within(name string, dirs []string) bool {
	for _, d := range dirs {
		if name == d || strings.HasPrefix(name, d+"/") {
			return true
		}
	}
	return false
}

// marker matches a line that ends in a part's marker: a comment opener somewhere before it,
// then "optional: NAME", maybe a keyword, maybe the end of an HTML comment.
var marker = regexp.MustCompile(`(?://|#|<!--).*\boptional: ([a-z]+)(?: (begin|end|file))?\s*(?:-->)?\s*$`)

// strip returns text without the lines marked for the part called name, how many lines it
// dropped, and whether a file marker asks for the whole file to go. It checks every marker,
// whatever part it names: each must name a part, and blocks must be closed and not nested.
func strip(text, name string) (string, int, bool, error) {
	lines := strings.SplitAfter(text, "\n")
	keep := make([]bool, len(lines))
	whole := false
	open, openAt := "", 0 // the part whose block is open, and its begin line
	for i, l := range lines {
		keep[i] = true
		m := marker.FindStringSubmatch(strings.TrimRight(l, "\r\n"))
		if m == nil {
			if open == name {
				keep[i] = false
			}
			continue
		}
		who, kw := m[1], m[2]
		if !slices.ContainsFunc(parts, func(p part) bool { return p.name == who }) {
			return "", 0, false, fmt.Errorf("line %d: marker %q names no part (%s)", i+1, "optional: "+who, names())
		}
		switch kw {
		case "begin":
			if open != "" {
				return "", 0, false, fmt.Errorf("line %d: %q inside the block of %q that line %d begins", i+1, "optional: "+who+" begin", open, openAt)
			}
			open, openAt = who, i+1
		case "end":
			if open != who {
				return "", 0, false, fmt.Errorf("line %d: %q without its begin", i+1, "optional: "+who+" end")
			}
			open = ""
		case "file":
			whole = whole || who == name
		}
		if who == name || open == name {
			keep[i] = false
		}
	}
	if open != "" {
		return "", 0, false, fmt.Errorf("line %d: %q without its end", openAt, "optional: "+open+" begin")
	}
	var b strings.Builder
	n := 0
	for i, l := range lines {
		if !keep[i] {
			n++
			continue
		}
		// A deletion between two blank lines (or at the top) would leave two in a row.
		if blank(l) && i > 0 && !keep[i-1] && (lastBlank(b.String()) || b.Len() == 0) {
			n++
			continue
		}
		b.WriteString(l)
	}
	return b.String(), n, whole, nil
}

func blank(l string) bool { return strings.TrimSpace(l) == "" }

// lastBlank reports whether s ends with a blank line.
func lastBlank(s string) bool {
	s = strings.TrimSuffix(s, "\n")
	i := strings.LastIndexByte(s, '\n')
	return blank(s[i+1:])
}

func names() string {
	var ns []string
	for _, p := range parts {
		ns = append(ns, p.name)
	}
	return strings.Join(ns, ", ")
}
