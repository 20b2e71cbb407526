package storage

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gofiber/storage/postgres/v3"

	"github.com/gofiber-template/sessions/internal/pgtest"
)

// TestPostgresV3SharesTheTable: the Postgres tier keeps gofiber/storage/postgres/v3's row layout
// and meaning (k, v, e in unix seconds, 0 for none), so postgres/v3 itself, pointed at the same
// table, reads what the Store wrote, and the Store reads what postgres/v3 wrote (hearing of it
// through the table's trigger, like any other writer). Keys in the table are the hashes of the
// Store's keys.
func TestPostgresV3SharesTheTable(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewPool(t)
	s := newPGStore(t, pool, nil)
	// postgres/v3 closes the pool it is given: it gets one of its own.
	v3 := postgres.New(postgres.Config{DB: pgtest.Pool(t, dbURL), Table: Table, GCInterval: time.Hour})
	t.Cleanup(func() { _ = v3.Close() })

	if err := s.Set("written-by-store", []byte("from the store"), time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := v3.Get(hashKey("written-by-store"))
	if err != nil || !bytes.Equal(got, []byte("from the store")) {
		t.Errorf("postgres/v3 Get of the Store's row: got %q, %v; want %q", got, err, "from the store")
	}

	if err := v3.SetWithContext(context.Background(), hashKey("written-by-v3"), []byte("from postgres/v3"), time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err = s.Get("written-by-v3")
	if err != nil || !bytes.Equal(got, []byte("from postgres/v3")) {
		t.Errorf("Store Get of postgres/v3's row: got %q, %v; want %q", got, err, "from postgres/v3")
	}

	// A delete through postgres/v3 reaches the Store's memory through the trigger's notification.
	if err := v3.Delete(hashKey("written-by-store")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the Store drops the row postgres/v3 deleted", func() bool {
		v, err := s.Get("written-by-store")
		return err == nil && v == nil
	})
}
