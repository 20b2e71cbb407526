// Command init turns a clone of the template into your own project: it renames the module and
// the binary in every file git tracks. From the repository's root:
//
//	go -C tools run ./init example.com/myapp
//	go tool -modfile=tools/go.mod task init -- example.com/myapp   (the same, through Task)
//
// It reads the current module path from go.mod, so it also renames a project it made before.
// It refuses a path that golang.org/x/mod/module.CheckPath rejects, and refuses to change a
// tree with uncommitted changes (so that `git diff` shows exactly what it did and `git checkout
// .` undoes it). Run twice with the same path, the second run finds nothing to do.
//
// What it rewrites, in every file `git ls-files` lists except testdata/ folders (test inputs)
// and binary files:
//
//   - The module path, wherever it is a whole module or package path: go.mod, the module lines,
//     requirements and replacements of bench/go.mod and tools/go.mod, every import, and every
//     mention (READMEs, reports, linter settings, URLs of the repository).
//   - The binary's name NAME (the last element of the module path, without a /vN suffix), only
//     where it names the program, as a whole word (not in NAME.go, NAME_x, x-NAME):
//     a command line: NAME followed by one of the program's commands or a bracket ("NAME
//     serve", "NAME help", "NAME health", "NAME migrate up", "NAME user create EMAIL", "NAME [command]"), or
//     its exec form ("NAME", "serve"), and the first element of an exec-form list outside Go
//     (ENTRYPOINT ["NAME"]);
//     the value of -o, -p, -t, --output, --name, --project-name or --tag (go build -o NAME,
//     docker compose -p NAME, docker build -t NAME:latest), and the image that ends a docker
//     run line;
//     the last element of a file path outside Go and SQL code (/usr/local/bin/NAME, ./NAME,
//     the .gitignore entry /NAME);
//     the value of a YAML image, name, container_name or hostname key;
//     a Markdown file's first-level title (# NAME: ...);
//     in Go, the constant Name (app.Name, which the usage text and error messages print) and a
//     main package's "// Command NAME" doc comment.
//
// Everything else stays, in particular NAME as a noun in prose, identifiers, SQL (a table
// called NAME, its migrations), metric names, the database in a URL (host:5432/NAME?sslmode),
// routes (GET /NAME), directories (NAME/), and front-end files (.js, .html, .css, .json: a
// /NAME there is a route the page fetches). Rules work line by line: keep a command line on
// one line. Markdown between <!-- template-only --> and <!-- /template-only --> (how to start a
// project from the template) is deleted.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/gofiber-template/sessions/tools/internal/project"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "init:", err)
		os.Exit(1)
	}
}

// run renames the project whose root holds the working directory (see findRoot) to the module
// path in args, and reports what it changed on out.
func run(args []string, out io.Writer) error {
	if len(args) != 1 || slices.Contains([]string{"-h", "-help", "--help"}, args[0]) {
		return errors.New("usage: go -C tools run ./init NEW/MODULE/PATH (e.g. example.com/myapp)")
	}
	newPath := args[0]
	if err := module.CheckPath(newPath); err != nil {
		if e, ok := errors.AsType[*module.InvalidPathError](err); ok {
			err = e.Err // the reason, without the path again
		}
		return fmt.Errorf("%q is not a valid module path: %w", newPath, err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := project.Root(wd)
	if err != nil {
		return err
	}
	oldPath, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	r := newRenamer(oldPath, newPath)

	files, err := project.Files(root)
	if err != nil {
		return err
	}
	type change struct {
		name  string
		text  string
		lines int
		mode  os.FileMode
	}
	var changes []change
	for _, name := range files {
		if slices.Contains(strings.Split(name, "/"), "testdata") {
			continue
		}
		full := filepath.Join(root, filepath.FromSlash(name))
		fi, err := os.Lstat(full)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted, not yet committed: the clean-tree check reports it
			}
			return err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		if bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data) {
			continue // binary
		}
		text, n, err := r.rewrite(name, string(data))
		if err != nil {
			return err
		}
		if n > 0 {
			changes = append(changes, change{name, text, n, fi.Mode().Perm()})
		}
	}
	if len(changes) == 0 {
		fmt.Fprintf(out, "init: nothing to do: the module is %s and the binary %s\n", newPath, r.newName)
		return nil
	}
	if dirty, err := project.Uncommitted(root); err != nil {
		return err
	} else if dirty != "" {
		return fmt.Errorf("the tree has uncommitted changes (%s); commit or stash them first, so that git diff shows what init changes", dirty)
	}
	for _, c := range changes {
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(c.name)), []byte(c.text), c.mode); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-40s %s\n", c.name, project.Plural(c.lines, "line"))
	}
	fmt.Fprintf(out, "init: renamed module %s to %s and binary %s to %s in %s; review with git diff, then commit\n",
		oldPath, newPath, r.oldName, r.newName, project.Plural(len(changes), "file"))
	return nil
}

// modulePath reads the module path declared in the go.mod file name.
func modulePath(name string) (string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	p := modfile.ModulePath(data)
	if p == "" {
		return "", fmt.Errorf("%s declares no module", name)
	}
	return p, nil
}
