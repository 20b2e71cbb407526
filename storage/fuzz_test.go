package storage

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzStoreModel runs random programs against a Store over the stand-in tier and against a
// plain map (the model), and requires the same answers. A program interleaves Get, GetDecoded,
// Set, Delete and Reset (and Touch, in FuzzStoreModelTouch) with writes and deletes (and
// touches) by another instance, reads that start, pause half-way (after reading the row) and
// finish later, listener loss, clock moves, and the notifications of every change (this
// instance's and the other's) delivered late, in any order and more than once, as a real
// listener can deliver them. The memory tier holds two entries, so eviction is exercised too.
//
// A Get must answer what the model holds, except that a change made by the other instance may
// go unseen until its notification arrives (the documented coherence window). A change this
// instance made is seen at once, whatever notifications are still on their way. At the end
// every notification is delivered and every key must read as the model says. Seeds live in
// testdata/fuzz.
func FuzzStoreModel(f *testing.F) {
	f.Add([]byte{1, 0, 1, 2, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 1, 1, 0, 0, 2, 0, 1, 0, 1, 1, 0, 0})
	f.Add([]byte{1, 1, 7, 3, 5, 3, 0, 1, 3, 1, 9, 0, 0, 1})
	// A read in flight, a Delete, then the late notification of another instance's earlier
	// write, then the read finishes.
	f.Add([]byte{3, 0, 1, 4, 9, 0, 2, 0, 8, 0, 0, 1, 10, 0, 0, 0, 0})
	f.Add([]byte{3, 0, 1, 4, 9, 0, 1, 0, 2, 4, 8, 0, 0, 1, 10, 0, 0, 0, 0}) // ... a Set instead
	f.Fuzz(func(t *testing.T, prog []byte) { runProg(t, prog, opsWithoutTouch) })
}

// FuzzStoreModelTouch is FuzzStoreModel with Touch, by this instance and by another, among the
// operations. It is a target of its own so that FuzzStoreModel's corpus (testdata/fuzz), which
// holds the inputs that found the fill races (a read that outlives a delete), keeps its meaning: adding operations
// renumbers them.
func FuzzStoreModelTouch(f *testing.F) {
	// A read pauses, the key is touched, the read finishes, GetDecoded: the touch's row wins.
	f.Add([]byte{1, 0, 1, 3, 9, 0, 11, 0, 3, 10, 0, 0, 0, 1})
	// Another instance touches a cached key; time passes beyond the old expiry.
	f.Add([]byte{1, 0, 1, 1, 0, 0, 1, 12, 0, 4, 5, 0, 2, 0, 0, 1, 5, 0, 2, 0, 0, 1})
	// A key deleted by another instance is touched: ErrDeleted, nothing comes back.
	f.Add([]byte{1, 1, 1, 3, 0, 1, 1, 4, 1, 11, 1, 2, 0, 1, 1})
	f.Fuzz(func(t *testing.T, prog []byte) { runProg(t, prog, opsWithTouch) })
}

// The number of operations a program's byte picks from (see runProg's switch).
const (
	opsWithoutTouch = 11
	opsWithTouch    = 13
)

// pausedRead is a Get stopped inside the tier, right after it read the row.
type pausedRead struct {
	reached, proceed, done chan struct{}
	val                    []byte
	err                    error
}

func runProg(t *testing.T, prog []byte, ops byte) {
	clock := newFakeClock()
	cfg := DefaultConfig()
	cfg.Capacity = 2
	cfg.MaxAge = 5 * time.Second
	cfg.SweepInterval = time.Hour // the program sweeps both tiers itself (op 5)
	cfg.Now = clock.Now
	cfg.Decode = func(v []byte) (any, error) { return string(v), nil }
	ft := newFakeTier(clock.Now)
	var pauseNext atomic.Pointer[pausedRead]
	ft.afterGet = func(string) {
		if p := pauseNext.Swap(nil); p != nil {
			close(p.reached)
			<-p.proceed
		}
	}
	s := newStore(ft, nil, cfg, true)
	defer s.Close()
	model := newMapTier(clock.Now, true) // the same semantics, with no cache in front

	keys := []string{"k0", "k1", "k2"} // more keys than memory holds, few enough to collide often
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

	type note struct {
		payload, h string
		own        bool
		seq        int
	}
	var queue []note            // notifications sent, not yet delivered
	lastOwn := map[string]int{} // per hashed key, seq of this instance's last change
	// otherSince: the other instance changed the hashed key since this instance last did.
	otherSince := map[string]bool{}
	seq := 0
	send := func(payload, h string, own bool) {
		seq++
		queue = append(queue, note{payload, h, own, seq})
		if own {
			lastOwn[h] = seq
		}
	}
	// staleAllowed: the other instance changed h after this instance last did, and its
	// notification has not arrived yet.
	staleAllowed := func(h string) bool {
		for _, n := range queue {
			if !n.own && n.h == h && n.seq > lastOwn[h] {
				return true
			}
		}
		return false
	}
	reads := map[string]*pausedRead{}
	finish := func(key string) {
		p := reads[key]
		if p == nil {
			return
		}
		delete(reads, key)
		close(p.proceed)
		<-p.done
		if p.err != nil {
			t.Fatalf("paused Get(%s): %v", key, p.err)
		}
	}
	defer func() { // before Close, which waits for paused reads
		for k := range reads {
			finish(k)
		}
	}()
	check := func(step int, key string, useDecoded bool) {
		var (
			got     []byte
			err     error
			expires time.Time
		)
		if useDecoded {
			var d any
			d, expires, err = s.GetDecoded(context.Background(), key)
			if d != nil {
				got = []byte(d.(string))
			}
		} else {
			got, err = s.Get(key)
		}
		if err != nil {
			t.Fatalf("step %d: Get(%s): %v", step, key, err)
		}
		h := hashKey(key)
		if staleAllowed(h) {
			return
		}
		want := modelGet(model, h, clock.Now())
		if string(got) != string(want) || (got == nil) != (want == nil) {
			t.Fatalf("step %d: Get(%s) = %q, model says %q", step, key, got, want)
		}
		// The expiry GetDecoded reports is the row's, or an earlier one when another instance
		// has moved it later since (a touch tells nobody; a write of the same value with a
		// later expiry leaves copies alone); never a later one, never a past one. After this
		// instance's own change, exactly the row's.
		if useDecoded && got != nil {
			e := model.rows[h].e
			later := e != 0 && (expires.IsZero() || expires.Unix() > e)
			exact := (e == 0 && expires.IsZero()) || (e != 0 && expires.Unix() == e)
			if later || (!expires.IsZero() && !expires.After(clock.Now())) || (!otherSince[h] && !exact) {
				t.Fatalf("step %d: GetDecoded(%s) expires %v, the row at %d (now %v)", step, key, expires, e, clock.Now())
			}
		}
	}
	// write is a write by this instance (own) or another one, and its notification.
	write := func(key string, val []byte, exp time.Duration, own bool) error {
		h := hashKey(key)
		otherSince[h] = !own
		e := rowExpiry(clock.Now(), exp)
		var err error
		if own {
			err = s.Set(key, val, exp)
		} else {
			err = ft.set(context.Background(), h, val, e, "")
		}
		wantErr := model.set(context.Background(), h, val, e, "")
		if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Fatalf("Set(%s) = %v, model says %v", key, err, wantErr)
		}
		if err == nil {
			send(updatePayload(h, string(val), e), h, own)
		}
		return err
	}
	del := func(key string, own bool) {
		h := hashKey(key)
		otherSince[h] = !own
		_, existed := model.rows[h]
		if own {
			if err := s.Delete(key); err != nil {
				t.Fatalf("Delete(%s): %v", key, err)
			}
		} else {
			ft.delete(context.Background(), h)
		}
		model.delete(context.Background(), h)
		if existed {
			send("d "+h, h, own)
		} else if own {
			lastOwn[h] = seq + 1 // no notification, but a change the caller must see at once
			seq++
		}
	}

	// touch is a Touch by this instance (own) or another one; it sends no notification.
	touch := func(key string, exp time.Duration, own bool) {
		h := hashKey(key)
		otherSince[h] = !own
		now := clock.Now()
		var err error
		if own {
			err = s.Touch(context.Background(), key, now.Add(exp))
		} else {
			_, _, err = ft.touch(context.Background(), h, rowExpiry(now, exp), now.Unix())
		}
		_, _, wantErr := model.touch(context.Background(), h, rowExpiry(now, exp), now.Unix())
		if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Fatalf("Touch(%s) = %v, model says %v", key, err, wantErr)
		}
		if own { // no notification, but the caller must see the row at once
			seq++
			lastOwn[h] = seq
		}
	}

	for i := 0; len(prog) > 0 && i < 200; i++ {
		op := next() % ops
		key := keys[int(next())%len(keys)]
		switch op {
		case 0: // Get, or GetDecoded (whose decoded form lives with the memory entry)
			finish(key) // a Get would join its read and wait for it
			check(i, key, next()%2 == 1)
		case 1: // Set
			_ = write(key, []byte(fmt.Sprintf("v%d", next())), exps[int(next())%len(exps)], true)
		case 2: // Delete
			del(key, true)
		case 3: // another instance writes
			_ = write(key, []byte(fmt.Sprintf("w%d", next())), exps[int(next())%len(exps)], false)
		case 4: // another instance deletes
			del(key, false)
		case 5: // time passes, and the tier is swept of what expired (tombstones too)
			clock.Advance(steps[int(next())%len(steps)])
			_ = ft.sweep(context.Background(), clock.Now())
			_ = model.sweep(context.Background(), clock.Now())
		case 6: // Reset
			if err := s.Reset(); err != nil {
				t.Fatal(err)
			}
			model.reset(context.Background())
			for _, k := range keys {
				lastOwn[hashKey(k)] = seq + 1
				otherSince[hashKey(k)] = false
			}
			send("r", "", true)
		case 7: // the listener drops, losing what was not delivered, and may come back
			s.setCoherent(false)
			queue = nil
			if next()%2 == 0 {
				s.setCoherent(true)
			}
		case 8: // a notification arrives: any of those on their way, perhaps again later
			if len(queue) == 0 {
				break
			}
			j := int(next()) % len(queue)
			s.apply(queue[j].payload)
			if next()%4 != 0 {
				queue = append(queue[:j], queue[j+1:]...)
			}
		case 9: // a read starts and stops after reading the row
			if reads[key] != nil {
				break
			}
			p := &pausedRead{reached: make(chan struct{}), proceed: make(chan struct{}), done: make(chan struct{})}
			pauseNext.Store(p)
			go func() {
				p.val, p.err = s.Get(key)
				close(p.done)
			}()
			select {
			case <-p.reached:
				reads[key] = p
			case <-p.done: // a hit: it never reached the tier
				pauseNext.Store(nil)
				if p.err != nil {
					t.Fatalf("step %d: Get(%s): %v", i, key, p.err)
				}
			}
		case 10: // a paused read finishes
			finish(key)
		case 11: // Touch
			touch(key, exps[1+int(next())%(len(exps)-1)], true)
		case 12: // another instance touches
			touch(key, exps[1+int(next())%(len(exps)-1)], false)
		}
		assertIndexMatchesMemory(t, s)
	}

	// Settle: every read finishes; this instance's changes must show at once; then every
	// notification arrives and memory must agree with the model entirely.
	for _, k := range keys {
		finish(k)
	}
	for _, k := range keys {
		check(-1, k, false)
	}
	for _, n := range queue {
		s.apply(n.payload)
	}
	queue = nil
	for _, k := range keys {
		check(-1, k, false)
		check(-1, k, true)
	}
}

func modelGet(m *mapTier, h string, now time.Time) []byte {
	r, ok := m.rows[h]
	if !ok || expired(r.e, now) {
		return nil
	}
	return r.v
}
