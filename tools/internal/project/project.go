// Package project is what the tools that rewrite a clone (init, remove) need of it: where its
// root is, which files git tracks there, whether the tree has uncommitted changes, and a way to
// run a command in it.
package project

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Root returns the project's root: the nearest directory, from dir up, that holds both go.mod
// and tools/go.mod. So a tool works run from the root or from tools/.
func Root(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if IsFile(filepath.Join(d, "go.mod")) && IsFile(filepath.Join(d, "tools", "go.mod")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no project root (a folder with go.mod and tools/go.mod) at or above %s", dir)
		}
	}
}

// IsFile reports whether name is a regular file.
func IsFile(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

// Files lists the files git tracks under root, slash-separated and relative to it.
func Files(root string) ([]string, error) {
	out, err := Command(root, "git", "ls-files", "-z", "--", ".")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range strings.Split(out, "\x00") {
		if f != "" {
			files = append(files, path.Clean(f))
		}
	}
	return files, nil
}

// Uncommitted returns the first line of git status --porcelain under root, or "" for a clean
// tree. Untracked files count: a tool could not tell them from its own work afterwards.
func Uncommitted(root string) (string, error) {
	out, err := Command(root, "git", "status", "--porcelain", "--", ".")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	switch {
	case lines[0] == "":
		return "", nil
	case len(lines) > 1:
		return fmt.Sprintf("%s and %d more", strings.TrimSpace(lines[0]), len(lines)-1), nil
	}
	return strings.TrimSpace(lines[0]), nil
}

// Command runs name with args in dir and returns its standard output; its error carries the
// command's standard error.
func Command(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Plural is "1 what" or "n whats".
func Plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
