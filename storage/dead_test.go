package storage

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// isDead reports whether the store remembers key as dead.
func isDead(s *Store, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil || s.mem.dead == nil {
		return false
	}
	_, ok := s.mem.dead.byHash[hashKey(key)]
	return ok
}

// TestDeadKeyCostsOneRead: with tombstones, a key read as absent (deleted, expired or never
// written) is remembered: asking for it again costs no read, until something happens to it.
func TestDeadKeyCostsOneRead(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	h := hashKey("gone")
	ft.put(h, []byte("v"), clock.Now().Unix()+100)
	if err := ft.delete(context.Background(), h); err != nil { // logged out elsewhere
		t.Fatal(err)
	}
	for range 500 {
		wantValue(t, mustGet(t, s, "gone"), "")
	}
	if n := ft.gets.Load(); n != 1 {
		t.Fatalf("got %d tier reads for 500 Gets of a deleted key, want 1", n)
	}
	// A save of it is still refused by its tombstone, and it stays dead.
	if err := s.Set("gone", []byte("late"), time.Hour); !errors.Is(err, ErrDeleted) {
		t.Fatalf("Set of a dead key: got %v, want ErrDeleted", err)
	}
	wantValue(t, mustGet(t, s, "gone"), "")
	if n := ft.gets.Load(); n != 1 {
		t.Fatalf("got %d tier reads after a refused Set, want still 1", n)
	}
	// Dead entries live no longer than MaxAge.
	clock.Advance(s.cfg.MaxAge)
	wantValue(t, mustGet(t, s, "gone"), "")
	if n := ft.gets.Load(); n != 2 {
		t.Fatalf("got %d tier reads after MaxAge, want 2", n)
	}
}

// TestDeadKeyThatComesBackIsServed: a key remembered as absent that is then written, here or by
// another instance, is served with its new value: the dead entry goes with the write, or with
// its notification.
func TestDeadKeyThatComesBackIsServed(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	wantValue(t, mustGet(t, s, "here"), "")
	wantValue(t, mustGet(t, s, "there"), "")
	if !isDead(s, "here") || !isDead(s, "there") {
		t.Fatal("keys read as absent are not remembered")
	}
	mustSet(t, s, "here", "1", time.Hour)
	wantValue(t, mustGet(t, s, "here"), "1")

	h, e := hashKey("there"), clock.Now().Unix()+100
	ft.put(h, []byte("2"), e) // another instance writes it ...
	s.apply(updatePayload(h, "2", e))
	wantValue(t, mustGet(t, s, "there"), "2") // ... and its notification arrives

	wantValue(t, mustGet(t, s, "flushed"), "")
	ft.put(hashKey("flushed"), []byte("3"), e)
	s.setCoherent(false) // the listener is lost: its notification may be too
	s.setCoherent(true)
	wantValue(t, mustGet(t, s, "flushed"), "3")
}

// TestDeadReadRacingAWriteIsNotRemembered: a read that found nothing, while another instance
// wrote the key and its notification arrived, must not remember the key as dead.
func TestDeadReadRacingAWriteIsNotRemembered(t *testing.T) {
	s, ft, clock := newTestStore(t, 10)
	finish := raceRead(t, s, ft, "a") // read nothing
	h, e := hashKey("a"), clock.Now().Unix()+100
	ft.put(h, []byte("v"), e)
	s.apply(updatePayload(h, "v", e))
	wantValue(t, finish(), "")
	wantValue(t, mustGet(t, s, "a"), "v")
}

// TestDeadSetIsBounded: the dead set holds at most DeadCapacity keys, least recently asked
// for out first; and nothing without tombstones, where a deleted key may be set again at once.
func TestDeadSetIsBounded(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	s.Close()
	cfg := s.cfg
	cfg.DeadCapacity = 3
	s = newStore(ft, nil, cfg, true)
	defer s.Close()
	for _, k := range []string{"a", "b", "c"} {
		mustGet(t, s, k)
	}
	mustGet(t, s, "a") // b is now the least recently asked for
	for i := range 100 {
		mustGet(t, s, "x"+strconv.Itoa(i))
	}
	s.mu.Lock()
	n := s.mem.dead.len()
	s.mu.Unlock()
	if n != 3 {
		t.Fatalf("got %d dead keys, want the capacity, 3", n)
	}
	if isDead(s, "a") || isDead(s, "b") || !isDead(s, "x99") {
		t.Fatal("the dead set does not drop the least recently asked for keys first")
	}

	cfg.Tombstones = false
	plain := newStore(newMapTier(cfg.Now, false), nil, cfg, true)
	defer plain.Close()
	mustGet(t, plain, "a")
	if isDead(plain, "a") {
		t.Fatal("a store without tombstones remembers dead keys")
	}
}

// TestDeletedHereCostsNoRead: a key this store deleted is known dead without reading it.
func TestDeletedHereCostsNoRead(t *testing.T) {
	s, ft, _ := newTestStore(t, 10)
	mustSet(t, s, "a", "v", time.Hour)
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		wantValue(t, mustGet(t, s, "a"), "")
	}
	if n := ft.gets.Load(); n != 0 {
		t.Fatalf("got %d tier reads after a Delete here, want 0", n)
	}
}

func TestConfigDeadCapacityIsNotNegative(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DeadCapacity = -1
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "DeadCapacity") {
		t.Fatalf("validate: got %v, want an error naming DeadCapacity", err)
	}
}
