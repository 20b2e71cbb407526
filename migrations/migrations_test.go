package migrations_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/migrations"
)

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t) // already migrated up
	g, err := migrations.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	versions := upVersions(t) // ascending
	latest := versions[len(versions)-1]
	v, dirty, err := g.Version()
	if err != nil || dirty || v != latest {
		t.Fatalf("got version %d dirty=%v err=%v, want %d clean", v, dirty, err, latest)
	}
	if err := g.Up(); err != nil {
		t.Fatalf("Up with nothing to apply: %v", err)
	}
	for i := len(versions) - 2; i >= -1; i-- {
		want := uint(0)
		if i >= 0 {
			want = versions[i]
		}
		if err := g.Down(); err != nil {
			t.Fatalf("Down: %v", err)
		}
		if v, _, _ := g.Version(); v != want {
			t.Fatalf("got version %d after Down, want %d", v, want)
		}
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"); n != 0 {
		t.Fatalf("got %d tables after migrating all the way down, want 0", n)
	}
	if err := g.Down(); err != nil {
		t.Fatalf("Down with nothing to revert: %v", err)
	}
	if err := g.Up(); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := g.Version(); v != latest {
		t.Fatalf("got version %d after Up, want %d", v, latest)
	}
}

// upVersions returns the versions of the .up.sql files in this directory, in ascending order.
func upVersions(t *testing.T) []uint {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint
	for _, e := range entries {
		if num, _, ok := strings.Cut(e.Name(), "_"); ok && strings.HasSuffix(e.Name(), ".up.sql") {
			v, err := strconv.ParseUint(num, 10, 32)
			if err != nil {
				t.Fatalf("%s: no version number: %v", e.Name(), err)
			}
			versions = append(versions, uint(v))
		}
	}
	slices.Sort(versions)
	if len(versions) == 0 {
		t.Fatal("no .up.sql files")
	}
	return versions
}
