package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// FuzzStoreModel runs random sequences of Get, GetDecoded, Set, Delete, writes and deletes by another
// instance (with their notifications), listener loss, Reset and clock moves against a Store
// over the stand-in tier and against a plain map, and requires the same answers. The memory
// tier holds two entries, so eviction is exercised too. Seeds live in testdata/fuzz.
func FuzzStoreModel(f *testing.F) {
	f.Add([]byte{1, 0, 1, 2, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 1, 1, 0, 0, 2, 0, 1, 0, 1, 1, 0, 0})
	f.Add([]byte{1, 1, 7, 3, 5, 3, 0, 1, 3, 1, 9, 0, 0, 1})
	f.Fuzz(runProg)
}

func runProg(t *testing.T, prog []byte) {
	{
		clock := newFakeClock()
		cfg := DefaultConfig()
		cfg.Capacity = 2
		cfg.MaxAge = 5 * time.Second
		cfg.Now = clock.Now
		cfg.Decode = func(v []byte) (any, error) { return string(v), nil }
		ft := newFakeTier(clock.Now)
		s := newStore(ft, nil, cfg, true)
		defer s.Close()
		model := newFakeTier(clock.Now) // the same semantics, with no cache in front

		keys := []string{"k0", "k1", "k2", "k3"}
		exps := []time.Duration{0, time.Second, 1500 * time.Millisecond, 3 * time.Second, time.Minute}
		steps := []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, time.Second, 3 * time.Second, cfg.MaxAge}
		next := func() byte {
			if len(prog) == 0 {
				return 0
			}
			b := prog[0]
			prog = prog[1:]
			return b
		}
		for i := 0; len(prog) > 0 && i < 200; i++ {
			op := next() % 8
			key := keys[int(next())%len(keys)]
			h := hashKey(key)
			switch op {
			case 0: // Get, or GetDecoded (whose decoded form lives with the memory entry)
				var got []byte
				var err error
				if next()%2 == 0 {
					got, err = s.Get(key)
				} else {
					var d any
					d, err = s.GetDecoded(context.Background(), key)
					if d != nil {
						got = []byte(d.(string))
					}
				}
				if err != nil {
					t.Fatalf("step %d: Get(%s): %v", i, key, err)
				}
				want := modelGet(model, h, clock.Now())
				if string(got) != string(want) || (got == nil) != (want == nil) {
					t.Fatalf("step %d: Get(%s) = %q, model says %q", i, key, got, want)
				}
			case 1: // Set
				val := []byte(fmt.Sprintf("v%d", next()))
				exp := exps[int(next())%len(exps)]
				err := s.Set(key, val, exp)
				wantErr := model.set(context.Background(), h, val, exp)
				if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
					t.Fatalf("step %d: Set(%s) = %v, model says %v", i, key, err, wantErr)
				}
			case 2: // Delete
				if err := s.Delete(key); err != nil {
					t.Fatalf("step %d: Delete(%s): %v", i, key, err)
				}
				model.delete(context.Background(), h)
			case 3: // another instance writes, and we are notified
				val := []byte(fmt.Sprintf("w%d", next()))
				exp := exps[int(next())%len(exps)]
				err := ft.set(context.Background(), h, val, exp)
				wantErr := model.set(context.Background(), h, val, exp)
				if (err == nil) != (wantErr == nil) {
					t.Fatalf("step %d: tier and model disagree on a write: %v vs %v", i, err, wantErr)
				}
				if err == nil {
					s.apply(updatePayload(h, string(val), rowExpiry(clock.Now(), exp)))
				}
			case 4: // another instance deletes, and we are notified
				ft.delete(context.Background(), h)
				model.delete(context.Background(), h)
				s.apply("d " + h)
			case 5: // time passes
				clock.Add(steps[int(next())%len(steps)])
			case 6: // Reset
				if err := s.Reset(); err != nil {
					t.Fatal(err)
				}
				model.reset(context.Background())
			case 7: // the listener drops and comes back
				s.setCoherent(false)
				if next()%2 == 0 {
					s.setCoherent(true)
				}
			}
			assertIndexMatchesMemory(t, s)
		}
	}
}

func modelGet(m *fakeTier, h string, now time.Time) []byte {
	r, ok := m.rows[h]
	if !ok || expired(r.e, now) {
		return nil
	}
	return r.v
}
