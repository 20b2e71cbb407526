package main

import (
	"strings"
	"testing"
)

// The rules on a made-up template, example.org/acme/widgets (binary widgets), renamed to
// example.com/myapp: one line each, from the kinds of files a project holds.
func TestRewriteLine(t *testing.T) {
	tests := []struct {
		name, file, in, want string
	}{
		// The module path.
		{"go.mod module", "go.mod", "module example.org/acme/widgets", "module example.com/myapp"},
		{"tools module", "tools/go.mod", "module example.org/acme/widgets/tools", "module example.com/myapp/tools"},
		{"replace", "bench/go.mod", "replace example.org/acme/widgets => ../", "replace example.com/myapp => ../"},
		{"require", "bench/go.mod", "\texample.org/acme/widgets v0.0.0-00010101000000-000000000000", "\texample.com/myapp v0.0.0-00010101000000-000000000000"},
		{"import", "app/run.go", "\t\"example.org/acme/widgets/storage\"", "\t\"example.com/myapp/storage\""},
		{"two on a line", "README.md", "example.org/acme/widgets/app example.org/acme/widgets/storage", "example.com/myapp/app example.com/myapp/storage"},
		{"function in a profile", "bench/README.md", "| `example.org/acme/widgets/storage.(*memTier).touch` | 0.8 |", "| `example.com/myapp/storage.(*memTier).touch` | 0.8 |"},
		{"repository URL", "README.md", "https://example.org/acme/widgets/issues", "https://example.com/myapp/issues"},
		{"linter setting", ".golangci.yml", "        - example.org/acme/widgets", "        - example.com/myapp"},
		{"longer element", "go.mod", "require example.org/acme/widgets-extra v1.0.0", "require example.org/acme/widgets-extra v1.0.0"},
		{"longer last element", "x.go", "\"example.org/acme/widgetsx\"", "\"example.org/acme/widgetsx\""},
		{"longer host", "x.go", "\"sub.example.org/acme/widgets\"", "\"sub.example.org/acme/widgets\""},

		// The binary where it is the program.
		{"Go constant", "app/commands.go", "const Name = \"widgets\"", "const Name = \"myapp\""},
		{"Go doc of main", "main.go", "// Command widgets is a Fiber web server.", "// Command myapp is a Fiber web server."},
		{"Go comment, command", "main.go", "// with no arguments to serve; \"widgets help\" lists the", "// with no arguments to serve; \"myapp help\" lists the"},
		{"Go string, command", "app/commands.go", "\"echo 'pw' | widgets user create EMAIL\"", "\"echo 'pw' | myapp user create EMAIL\""},
		{"README title", "README.md", "# widgets: a Fiber v2 starter", "# myapp: a Fiber v2 starter"},
		{"README command", "README.md", "| `widgets migrate up` | Applies every pending migration. |", "| `myapp migrate up` | Applies every pending migration. |"},
		{"README usage", "README.md", "`widgets [serve]` runs the server", "`myapp [serve]` runs the server"},
		{"README help", "README.md", "run `widgets help`.", "run `myapp help`."},
		{"go build -o", "README.md", "`go build -o widgets .` gives one binary", "`go build -o myapp .` gives one binary"},
		{"path and command", "README.md", "./widgets user passwd EMAIL", "./myapp user passwd EMAIL"},
		{".gitignore", ".gitignore", "/widgets", "/myapp"},
		{"compose project", "Taskfile.yml", "docker compose -p widgets -f - up -d --wait <<'EOF'", "docker compose -p myapp -f - up -d --wait <<'EOF'"},
		{"compose name", "compose.yaml", "name: widgets", "name: myapp"},
		{"compose image", "compose.yaml", "    image: widgets:latest # built here", "    image: myapp:latest # built here"},
		{"compose command", "compose.yaml", "    command: [\"widgets\", \"migrate\", \"up\"]", "    command: [\"myapp\", \"migrate\", \"up\"]"},
		{"compose command line", "compose.yaml", "    command: /usr/local/bin/widgets serve", "    command: /usr/local/bin/myapp serve"},
		{"docker build", ".github/workflows/ci.yml", "      - run: docker build -t widgets:ci .", "      - run: docker build -t myapp:ci ."},
		{"docker run", "Dockerfile", "#   docker run --rm -p 127.0.0.1:3000:3000 -e DATABASE_URL=postgres://... widgets", "#   docker run --rm -p 127.0.0.1:3000:3000 -e DATABASE_URL=postgres://... myapp"},
		{"Dockerfile healthcheck", "Dockerfile", "HEALTHCHECK --interval=10s CMD [\"/widgets\", \"health\"]", "HEALTHCHECK --interval=10s CMD [\"/myapp\", \"health\"]"},
		{"Dockerfile build", "Dockerfile", "RUN CGO_ENABLED=0 go build -o /out/widgets .", "RUN CGO_ENABLED=0 go build -o /out/myapp ."},
		{"Dockerfile copy", "Dockerfile", "COPY --from=build /out/widgets /usr/local/bin/widgets", "COPY --from=build /out/myapp /usr/local/bin/myapp"},
		{"Dockerfile entrypoint", "Dockerfile", "ENTRYPOINT [\"/widgets\"]", "ENTRYPOINT [\"/myapp\"]"},
		{"Dockerfile entrypoint name", "Dockerfile", "ENTRYPOINT [\"widgets\"]", "ENTRYPOINT [\"myapp\"]"},
		{"CRLF", "README.md", "widgets help\r", "myapp help\r"},

		// The same word where it is not the program.
		{"prose", "README.md", "ends all their widgets on every instance.", ""},
		{"prose before a command word", "README.md", "Tiered widgets help users and serve pages", ""},
		{"a table named the same", "README.md", "the `widgets` table", ""},
		{"second-level heading", "README.md", "## widgets", ""},
		{"migration file", "README.md", "created by `migrations/0001_widgets.up.sql`", ""},
		{"Go file name", "README.md", "the guard (`app/widgets.go`)", ""},
		{"directory", "README.md", "see widgets/README.md and cd widgets/", ""},
		{"SQL", "migrations/0001_widgets.up.sql", "CREATE TABLE widgets (k text PRIMARY KEY);", ""},
		{"SQL command-like", "migrations/x.sql", "COMMENT ON TABLE widgets IS 'widgets help';", ""},
		{"SQL in Go", "bench/runs.go", "`INSERT INTO widgets (k, v, e) SELECT k FROM widgets s`", ""},
		{"metric", "app/metrics.go", "Name: \"widgets_login_attempts_total\",", ""},
		{"Go identifier", "app/widgets.go", "func (s *widgets) Start(c *fiber.Ctx) error { return widgets.x }", ""},
		{"Go flag name", "bench/main.go", "flag.StringVar(&o.widgets, \"widgets\", \"100\", \"distinct widgets\")", ""},
		{"Go route", "app/server.go", "app.Get(\"/widgets\", h)", ""},
		{"route fetched by a page", "web/app.js", "const resp = await fetch(\"/widgets\", { method: \"GET\" });", ""},
		{"route in HTML", "web/index.html", "<a href=\"/widgets\">widgets</a>", ""},
		{"Go path", "bench/setup.go", "b.bin = filepath.Join(b.tmp, \"widgets\")", ""},
		{"database in a URL", ".env.example", "DATABASE_URL=postgres://postgres@127.0.0.1:5432/widgets?sslmode=disable", ""},
		{"database in a URL, no query", "compose.yaml", "      DATABASE_URL: postgres://postgres@db:5432/widgets", ""},
		{"database name", "compose.yaml", "      POSTGRES_DB: widgets", ""},
		{"route in prose", "README.md", "`GET /widgets` lists them", ""},
		{"capitalised", "README.md", "Widgets are kept in memory", ""},
		{"hyphenated", "bench/setup.go", "os.MkdirTemp(\"\", \"widgets-bench-\")", ""},
		{"database named in a comment", "compose.yaml", "      # The server creates the database \"widgets\" and applies the migrations.", ""},
		{"docker run, not last", "README.md", "docker run widgets-db widgets are here", ""},
		{"other YAML key", "compose.yaml", "    volumes: widgets", ""},
	}
	r := newRenamer("example.org/acme/widgets", "example.com/myapp")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			if got := r.rewriteLine(kindOf(tt.file), tt.in); got != want {
				t.Errorf("%s: rewrite %q\ngot  %q\nwant %q", tt.file, tt.in, got, want)
			}
			if got := newRenamer("example.com/myapp", "example.com/myapp").rewriteLine(kindOf(tt.file), want); got != want {
				t.Errorf("%s: renaming to the same path changed %q to %q", tt.file, want, got)
			}
		})
	}
}

func TestBinaryName(t *testing.T) {
	for path, want := range map[string]string{
		"example.com/myapp":    "myapp",
		"example.com/myapp/v2": "myapp",
		"github.com/a/b/v10":   "b",
		"example.com/v2":       "example.com", // as go build names it
		"gopkg.in/yaml.v3":     "yaml.v3",
		"example.com/my.app":   "my.app",
	} {
		if got := binaryName(path); got != want {
			t.Errorf("binaryName(%q): got %q, want %q", path, got, want)
		}
	}
}

func TestTemplateOnly(t *testing.T) {
	r := newRenamer("example.org/acme/widgets", "example.com/myapp")
	in := "# widgets\n\nStart:\n<!-- template-only -->\n1. `gonew example.org/acme/widgets example.com/you/app`\n<!-- /template-only -->\n2. `widgets help`\n"
	got, n, err := r.rewrite("README.md", in)
	if want := "# myapp\n\nStart:\n2. `myapp help`\n"; err != nil || got != want || n != 5 {
		t.Errorf("got %q, %d lines, %v; want %q, 5 lines", got, n, err, want)
	}
	// Not Markdown: the markers mean nothing.
	if got, _, _ := r.rewrite("notes.txt", in); !strings.Contains(got, "template-only") {
		t.Errorf("notes.txt: got %q, want the block kept", got)
	}
	for _, bad := range []string{
		"<!-- template-only -->\nx\n",
		"x\n<!-- /template-only -->\n",
		"<!-- template-only -->\n<!-- template-only -->\n<!-- /template-only -->\n",
	} {
		if _, _, err := r.rewrite("README.md", bad); err == nil {
			t.Errorf("%q: got no error, want one about the markers", bad)
		}
	}
}

// In a Markdown code block a line that starts with the name and a command is the program,
// whatever follows it; the same words in prose are not.
func TestRewriteMarkdownCode(t *testing.T) {
	in := strings.Join([]string{
		"Tiered widgets help users and serve pages",
		"```",
		"widgets health              exit 0 if the server answers",
		"widgets serve               run the server",
		"  widgets user create EMAIL  add a user",
		"```",
		"widgets health is a command",
	}, "\n")
	want := strings.Join([]string{
		"Tiered widgets help users and serve pages",
		"```",
		"myapp health              exit 0 if the server answers",
		"myapp serve               run the server",
		"  myapp user create EMAIL  add a user",
		"```",
		"widgets health is a command",
	}, "\n")
	got, _, err := newRenamer("example.org/acme/widgets", "example.com/myapp").rewrite("README.md", in)
	if err != nil || got != want {
		t.Errorf("rewrite: got %v\n%s\nwant\n%s", err, got, want)
	}
}
