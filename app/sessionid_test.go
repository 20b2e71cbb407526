package app

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber-template/sessions/internal/pgtest"
)

func TestSessionIDs(t *testing.T) {
	t.Parallel()
	ids := newSessionIDs([]byte(strings.Repeat("k", keyLen)))
	other := newSessionIDs([]byte(strings.Repeat("o", keyLen)))
	id := ids.New()
	if len(id) != idLen || !ids.Valid(id) {
		t.Fatalf("New: got %q (%d characters), want a valid id of %d", id, len(id), idLen)
	}
	if again := ids.New(); again == id {
		t.Errorf("New twice: got %q both times", id)
	}
	flip := func(i int) string {
		b := []byte(id)
		b[i] = "AB"[b[i]%2] // A for B, B for A and for any other: always a change
		return string(b)
	}
	for _, tt := range []struct{ name, id string }{
		{"empty", ""},
		{"random part changed", flip(0)},
		{"MAC changed", flip(idLen - 2)},
		{"under another key", other.New()},
		{"unsigned, as before", rand.Text()},
		{"random, right shape", rand.Text() + rand.Text()},
		{"lower case", strings.ToLower(id)},
		{"one character more", id + "A"},
		{"one character less", id[:idLen-1]},
		{"outside the alphabet", "0" + id[1:]},
		{"NUL", "\x00" + id[1:]},
	} {
		if ids.Valid(tt.id) {
			t.Errorf("%s: Valid(%q) = true, want false", tt.name, tt.id)
		}
	}
}

// Servers that start together on one database end up with one key.
func TestLoadSessionIDsOneKey(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.NewPool(t)
	const servers = 8
	keys := make([]string, servers)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() {
			ids, err := loadSessionIDs(context.Background(), db)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = string(ids.key)
		})
	}
	wg.Wait()
	for i, k := range keys {
		if len(k) != keyLen || k != keys[0] {
			t.Fatalf("server %d: got a key of %d bytes, different from server 0's: %v", i, len(k), k != keys[0])
		}
	}
	if n := pgtest.Count(t, db, "SELECT count(*) FROM session_key"); n != 1 {
		t.Errorf("session_key rows: got %d, want 1", n)
	}
}
