package main

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"golang.org/x/mod/module"
)

// renamer rewrites one file's text from the old module path and binary name to the new ones.
// The rules are in the package comment; each one is a predicate below, so that a reader can
// check a surprising rewrite (or a missing one) against the rule that made it.
type renamer struct {
	oldPath, newPath string
	oldName, newName string
}

// newRenamer returns the renamer from module oldPath to newPath; the binary names are the
// paths' last elements (without a /vN major-version suffix, as go build names a binary).
func newRenamer(oldPath, newPath string) renamer {
	return renamer{oldPath: oldPath, newPath: newPath, oldName: binaryName(oldPath), newName: binaryName(newPath)}
}

// binaryName is the name go build gives the main package at the root of module p.
func binaryName(p string) string {
	if prefix, _, ok := module.SplitPathVersion(p); ok && prefix != p && !strings.HasPrefix(prefix, "gopkg.in/") {
		p = prefix
	}
	return path.Base(p)
}

// Markers of a block of Markdown that only makes sense in the template (how to start a project
// from it): the renamer deletes the block, markers included.
const (
	templateOnlyStart = "<!-- template-only -->"
	templateOnlyEnd   = "<!-- /template-only -->"
)

// rewrite returns text with the rules applied, and how many lines changed. name is the file's
// slash-separated path in the repository; its extension and base name select the file-type
// rules.
func (r renamer) rewrite(name, text string) (string, int, error) {
	lines := strings.Split(text, "\n")
	changed := 0
	if strings.HasSuffix(name, ".md") {
		kept, removed, err := dropTemplateOnly(lines)
		if err != nil {
			return "", 0, fmt.Errorf("%s: %w", name, err)
		}
		lines, changed = kept, removed
	}
	kind := kindOf(name)
	inCode := false
	for i, line := range lines {
		k := kind
		if kind == kindMarkdown {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inCode = !inCode
			} else if inCode {
				k = kindMarkdownCode
			}
		}
		out := r.rewriteLine(k, line)
		if out != line {
			lines[i] = out
			changed++
		}
	}
	return strings.Join(lines, "\n"), changed, nil
}

// dropTemplateOnly removes each template-only block and returns the lines left and how many
// were removed.
func dropTemplateOnly(lines []string) ([]string, int, error) {
	var kept []string
	in := false
	for i, line := range lines {
		switch strings.TrimSpace(line) {
		case templateOnlyStart:
			if in {
				return nil, 0, fmt.Errorf("line %d: %s inside another", i+1, templateOnlyStart)
			}
			in = true
			continue
		case templateOnlyEnd:
			if !in {
				return nil, 0, fmt.Errorf("line %d: %s without %s", i+1, templateOnlyEnd, templateOnlyStart)
			}
			in = false
			continue
		}
		if !in {
			kept = append(kept, line)
		}
	}
	if in {
		return nil, 0, fmt.Errorf("%s without %s", templateOnlyStart, templateOnlyEnd)
	}
	return kept, len(lines) - len(kept), nil
}

// fileKind selects the rules that depend on a file's type.
type fileKind int

const (
	kindText fileKind = iota
	kindGo
	kindSQL
	kindYAML
	kindMarkdown
	kindMarkdownCode // a line inside a fenced code block of a Markdown file
	kindWeb          // front-end files: a /NAME there is a route the page fetches, never the program
)

func kindOf(name string) fileKind {
	switch path.Ext(name) {
	case ".go":
		return kindGo
	case ".sql":
		return kindSQL
	case ".yml", ".yaml":
		return kindYAML
	case ".md":
		return kindMarkdown
	case ".js", ".mjs", ".ts", ".html", ".css", ".json":
		return kindWeb
	}
	return kindText
}

func (r renamer) rewriteLine(kind fileKind, line string) string {
	line = replaceModulePath(line, r.oldPath, r.newPath)
	if r.oldName == r.newName || kind == kindSQL || kind == kindWeb {
		return line
	}
	var b strings.Builder
	rest := line
	for {
		i := strings.Index(rest, r.oldName)
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		before := line[:len(line)-len(rest)+i]
		after := rest[i+len(r.oldName):]
		b.WriteString(rest[:i])
		if isWord(before, after) && isBinary(kind, before, after) {
			b.WriteString(r.newName)
		} else {
			b.WriteString(r.oldName)
		}
		rest = after
	}
}

// pathChar reports whether c can be part of a module path element.
func pathChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._~-", c) >= 0
}

// replaceModulePath replaces old with repl wherever it is a whole module path or the prefix of a package
// path: not preceded by a path character (a slash may precede it, as in a URL) and followed by
// the end, a slash or a character that cannot continue a path element.
func replaceModulePath(line, old, repl string) string {
	if old == repl || !strings.Contains(line, old) {
		return line
	}
	var b strings.Builder
	rest := line
	for {
		i := strings.Index(rest, old)
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		start := len(line) - len(rest) + i
		end := start + len(old)
		b.WriteString(rest[:i])
		if (start == 0 || !pathChar(line[start-1])) && (end == len(line) || !pathChar(line[end])) {
			b.WriteString(repl)
		} else {
			b.WriteString(old)
		}
		rest = line[end:]
	}
}

// isWord reports whether the occurrence between before and after is a word of its own: not
// part of an identifier, a file name (sessions.go) or a hyphenated or underscored name
// (0001_sessions, sessions-listener). A trailing full stop ends a sentence, not a name.
func isWord(before, after string) bool {
	if before != "" && pathChar(before[len(before)-1]) {
		return false
	}
	if after == "" {
		return true
	}
	c := after[0]
	if c == '.' {
		return len(after) == 1 || !pathChar(after[1])
	}
	return !pathChar(c)
}

var (
	// A command line: the name, then one of the program's commands (or its [command]
	// placeholder), then the end of the command line.
	commandRe = regexp.MustCompile(`^ (?:(?:help|serve|health)(?:$|[^ A-Za-z0-9_-])|(?:migrate (?:up|down|version)|user (?:create|passwd))(?:$|[^A-Za-z0-9_-])|\[)`)
	// A line of a code block that starts with the name and one of the program's commands,
	// whatever follows (a listing of commands and what they do).
	codeCommandRe = regexp.MustCompile(`^ (?:help|serve|health|migrate|user)(?:$|[^A-Za-z0-9_-])`)
	// The exec form of a command line, as in a Dockerfile or compose file: "NAME", "serve".
	execRe = regexp.MustCompile(`^",\s*"(?:help|serve|health|migrate|user)"`)
	// The first element of an exec-form list outside Go: ENTRYPOINT ["NAME"].
	execStartRe = regexp.MustCompile(`\[\s*"$`)
	// A flag whose value names the binary, an image or a Compose project.
	flagRe = regexp.MustCompile(`(?:^|\s)(?:-o|-p|-t|--output|--name|--project-name|--tag)(?:\s+|=)$`)
	// What may follow the binary's path: the end of a word in a shell line, a list or a quote.
	pathEndRe = regexp.MustCompile(`^(?:$|[\s"'` + "`" + `\]),;])`)
	// YAML keys whose value is the program's or its image's name.
	yamlKeyRe   = regexp.MustCompile(`^\s*(?:-\s+)?(?:image|name|container_name|hostname)\s*:\s*["']?$`)
	yamlValueRe = regexp.MustCompile(`^["']?(?::[A-Za-z0-9_.-]+)?["']?\s*(?:#.*)?\r?$`)
	// The Go constant holding the program's name (app.Name), and a main package's doc comment.
	goConstRe = regexp.MustCompile(`^\s*(?:const\s+)?Name\s*=\s*"$`)
	goDocRe   = regexp.MustCompile(`^// Command $`)
	// The words before a route in prose: GET /name is an HTTP path, not a file.
	routeRe = regexp.MustCompile(`(?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)\s+$`)
)

// isBinary reports whether a whole-word occurrence of the binary's name, between before and
// after on one line of a file of kind, names the program (see the package comment).
func isBinary(kind fileKind, before, after string) bool {
	switch {
	case commandRe.MatchString(after), execRe.MatchString(after):
		return true
	case flagRe.MatchString(before):
		return true
	case kind == kindMarkdownCode && strings.TrimSpace(before) == "" && codeCommandRe.MatchString(after):
		return true
	case strings.Contains(before, "docker run ") && strings.TrimSpace(after) == "":
		return true // the image, last on a docker run line
	case kind == kindGo:
		return goConstRe.MatchString(before) && strings.HasPrefix(after, `"`) ||
			goDocRe.MatchString(before) && strings.HasPrefix(after, " ")
	case execStartRe.MatchString(before) && strings.HasPrefix(after, `"`):
		return true
	case kind == kindYAML && yamlKeyRe.MatchString(before) && yamlValueRe.MatchString(after):
		return true
	case kind == kindMarkdown && strings.TrimRight(before, " ") == "#" && before != "#":
		return true
	}
	return isBinaryPath(before, after)
}

// isBinaryPath reports whether the occurrence is the last element of a file path outside Go
// code: /usr/local/bin/NAME, ./NAME, /NAME (a .gitignore entry or an image's entry point), but
// not the database of a URL (postgres://host:5432/NAME), a route (GET /NAME) or a directory
// (NAME/).
func isBinaryPath(before, after string) bool {
	if !strings.HasSuffix(before, "/") || !pathEndRe.MatchString(after) {
		return false
	}
	start := strings.LastIndexAny(before, " \t\"'`[(=,") + 1
	token := before[start:]
	if strings.ContainsAny(token, ":@?&") {
		return false
	}
	return !(token == "/" && routeRe.MatchString(before[:start]))
}
