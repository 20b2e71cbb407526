package migrations_test

import (
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

	v, dirty, err := g.Version()
	if err != nil || dirty || v != 3 {
		t.Fatalf("got version %d dirty=%v err=%v, want 3 clean", v, dirty, err)
	}
	if err := g.Up(); err != nil {
		t.Fatalf("Up with nothing to apply: %v", err)
	}
	for want := uint(2); ; want-- {
		if err := g.Down(); err != nil {
			t.Fatalf("Down: %v", err)
		}
		if v, _, _ := g.Version(); v != want {
			t.Fatalf("got version %d after Down, want %d", v, want)
		}
		if want == 0 {
			break
		}
	}
	if n := pgtest.Count(t, pool, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('sessions', 'session_tombstones', 'users', 'login_failures')"); n != 0 {
		t.Fatalf("got %d tables after migrating all the way down, want 0", n)
	}
	if err := g.Down(); err != nil {
		t.Fatalf("Down with nothing to revert: %v", err)
	}
	if err := g.Up(); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := g.Version(); v != 3 {
		t.Fatalf("got version %d after Up, want 3", v)
	}
}
