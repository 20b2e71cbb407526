package storage

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gofiber/storage/postgres/v3"

	"github.com/gofiber-template/sessions/internal/pgtest"
)

// A session as Fiber stores it is a few hundred bytes of gob.
var benchValue = make([]byte, 256)

// BenchmarkGet compares a memory hit with every way a Get can reach Postgres, in one run:
//
//	hit           tiered store, warm key: no database round trip
//	miss          tiered store, memory tier off: SELECT v, e on every call
//	postgres-v3   gofiber/storage/postgres/v3's own Get, the Postgres-only baseline
func BenchmarkGet(b *testing.B) {
	pool, _ := pgtest.NewPool(b)
	tiered := newPGStore(b, pool, nil)
	pgOnly := newPGStore(b, pool, func(c *Config) { c.Capacity = 0 })
	if err := tiered.Set("key", benchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	raw := postgres.New(postgres.Config{DB: pgtest.Pool(b, pgtest.AdminURL()), Table: "bench_v3"})
	b.Cleanup(func() { raw.Reset(); raw.Conn().Exec(context.Background(), "DROP TABLE bench_v3"); raw.Close() })
	if err := raw.Set(hashKey("key"), benchValue, time.Hour); err != nil {
		b.Fatal(err)
	}

	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, _ := tiered.Get("key"); len(v) != len(benchValue) {
				b.Fatal("miss")
			}
		}
	})
	b.Run("hit-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if v, _ := tiered.Get("key"); len(v) != len(benchValue) {
					b.Error("miss")
					return
				}
			}
		})
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, _ := pgOnly.Get("key"); len(v) != len(benchValue) {
				b.Fatal("not found")
			}
		}
	})
	b.Run("postgres-v3", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, _ := raw.Get(hashKey("key")); len(v) != len(benchValue) {
				b.Fatal("not found")
			}
		}
	})
}

// BenchmarkSet measures a write: Postgres UPSERT (through the triggers) then the memory fill.
func BenchmarkSet(b *testing.B) {
	pool, _ := pgtest.NewPool(b)
	s := newPGStore(b, pool, nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Set("key"+strconv.Itoa(i%1000), benchValue, time.Hour); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkDelete measures deleting a live session: the DELETE, its tombstone and NOTIFY.
func BenchmarkDelete(b *testing.B) {
	pool, _ := pgtest.NewPool(b)
	s := newPGStore(b, pool, nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		key := "key" + strconv.Itoa(i)
		i++
		if err := s.Set(key, benchValue, time.Hour); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.Delete(key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeleteToInvalidation measures how long after a Delete on store A returns store B
// has dropped its copy (ns/op is that latency).
func BenchmarkDeleteToInvalidation(b *testing.B) {
	pool, _ := pgtest.NewPool(b)
	a := newPGStore(b, pool, nil)
	bb := newPGStore(b, pool, nil)
	i := 0
	for b.Loop() {
		b.StopTimer()
		key := "key" + strconv.Itoa(i)
		i++
		if err := a.Set(key, benchValue, time.Hour); err != nil {
			b.Fatal(err)
		}
		for !inMemory(bb, key) {
			if _, err := bb.Get(key); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Delete(key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		deadline := time.Now().Add(time.Second)
		for inMemory(bb, key) {
			if time.Now().After(deadline) {
				b.Fatal("B still holds the key 1 s after the delete")
			}
		}
	}
}

// BenchmarkGetDecodedHit measures the guard's read of a warm session: GetDecoded on a memory hit
// of a Postgres-backed store (no database round trip, no copy, no decode).
func BenchmarkGetDecodedHit(b *testing.B) {
	pool, _ := pgtest.NewPool(b)
	s := newPGStore(b, pool, func(c *Config) { c.Decode = func(v []byte) (any, error) { return len(v), nil } })
	const key = "8d0c1a52-3b9e-4d7a-9a51-6c2f0e6b7f10" // a session cookie's length
	if err := s.Set(key, benchValue, time.Hour); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := s.GetDecoded(ctx, key); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if d, _, _ := s.GetDecoded(ctx, key); d == nil {
			b.Fatal("miss")
		}
	}
}

// BenchmarkOwned measures the listing query (GET /sessions): one owner's 5 sessions among
// 100,000 rows of 20,000 owners, in one round trip on the owner index.
func BenchmarkOwned(b *testing.B) {
	pool, _ := pgtest.NewPool(b)
	s := newPGStore(b, pool, func(c *Config) { c.SweepInterval = time.Hour })
	pgtest.Exec(b, pool, `INSERT INTO sessions (k, v, e, owner)
		SELECT md5(i::text), $1, $2, 'owner-' || (i % 20000)
		FROM generate_series(1, 100000) i`, benchValue, time.Now().Add(time.Hour).Unix())
	pgtest.Exec(b, pool, "ANALYZE sessions")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if rows, err := s.Owned(ctx, "owner-42", "key"); err != nil || len(rows) != 5 {
			b.Fatalf("got %d rows, %v; want 5", len(rows), err)
		}
	}
}
