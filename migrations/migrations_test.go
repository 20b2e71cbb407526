package migrations_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/migrations"
)

// schemaObjects lists what the migrations own in the public schema: relations (tables, indexes,
// sequences, views), functions, and types that are not a relation's row type, each as
// "kind name". golang-migrate's own bookkeeping table is left out.
func schemaObjects(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT 'relation ' || c.relname FROM pg_class c
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND c.relname NOT LIKE 'schema_migrations%'
		UNION ALL
		SELECT 'function ' || p.proname FROM pg_proc p
		  JOIN pg_namespace n ON n.oid = p.pronamespace
		 WHERE n.nspname = 'public'
		UNION ALL
		SELECT 'type ' || ty.typname FROM pg_type ty
		  JOIN pg_namespace n ON n.oid = ty.typnamespace
		 WHERE n.nspname = 'public' AND ty.typrelid = 0 AND ty.typelem = 0
		ORDER BY 1`)
	if err != nil {
		t.Fatalf("list schema objects: %v", err)
	}
	defer rows.Close()
	var objs []string
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestUpDownUp migrates a database all the way up, all the way down one step at a time, and up
// again. It reads the latest version from the embedded files, so adding a migration needs no
// change here; it fails when a down migration leaves anything of ours behind, or when going up
// again does not rebuild the same schema.
func TestUpDownUp(t *testing.T) {
	t.Parallel()
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := pgtest.NewPool(t) // already migrated up
	g, err := migrations.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	v, dirty, err := g.Version()
	if err != nil || dirty || v != latest {
		t.Fatalf("got version %d dirty=%v err=%v, want %d clean", v, dirty, err, latest)
	}
	full := schemaObjects(t, pool)
	if len(full) == 0 {
		t.Fatal("the migrated schema has no objects")
	}
	if err := g.Up(); err != nil {
		t.Fatalf("Up with nothing to apply: %v", err)
	}
	for prev := latest; prev > 0; {
		if err := g.Down(); err != nil {
			t.Fatalf("Down from %d: %v", prev, err)
		}
		v, dirty, err := g.Version()
		if err != nil || dirty || v >= prev {
			t.Fatalf("after Down from %d: got version %d dirty=%v err=%v, want a lower clean one", prev, v, dirty, err)
		}
		prev = v
	}
	if left := schemaObjects(t, pool); len(left) != 0 {
		t.Fatalf("migrating all the way down left %q behind, want nothing", left)
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
	if again := schemaObjects(t, pool); !slices.Equal(again, full) {
		t.Fatalf("Up after Down built %q, want %q as the first time", again, full)
	}
}
