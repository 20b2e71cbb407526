package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
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
			keys[i] = string(ids.signers[0].key)
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

// Several keys: the first signs, each verifies, and an id of a key not listed is refused.
func TestSessionIDsRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey, gone := []byte(strings.Repeat("o", keyLen)), []byte(strings.Repeat("n", keyLen)), []byte(strings.Repeat("g", keyLen))
	rotating := newSessionIDs(newKey, oldKey)
	for _, tt := range []struct {
		name   string
		signer sessionIDs
		want   bool
	}{
		{"signed by the first key", newSessionIDs(newKey), true},
		{"signed by a later key", newSessionIDs(oldKey), true},
		{"signed by a key not listed", newSessionIDs(gone), false},
		{"signed by itself", rotating, true},
	} {
		if got := rotating.Valid(tt.signer.New()); got != tt.want {
			t.Errorf("%s: Valid = %v, want %v", tt.name, got, tt.want)
		}
	}
	if id := rotating.New(); !newSessionIDs(newKey).Valid(id) || newSessionIDs(oldKey).Valid(id) {
		t.Errorf("New under (new, old): want an id signed by the first key only")
	}
}

func TestReadSessionKeys(t *testing.T) {
	t.Parallel()
	k1 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("1", 32)))
	k2 := base64.RawStdEncoding.EncodeToString([]byte(strings.Repeat("2", 48)))
	short := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 31)))
	dir := t.TempDir()
	file := func(content string) string {
		t.Helper()
		f, err := os.CreateTemp(dir, "keys")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return f.Name()
	}
	tests := []struct {
		name string
		vars map[string]string
		want int      // keys, when no error
		errs []string // parts of the error
	}{
		{"none", nil, 0, nil},
		{"one", map[string]string{"SESSION_KEYS": k1}, 1, nil},
		{"two, unpadded, spaced", map[string]string{"SESSION_KEYS": k1 + " , " + k2}, 2, nil},
		{"file", map[string]string{"SESSION_KEYS_FILE": file("# rotated 2026-12\n" + k2 + "\n\n" + k1 + "\n")}, 2, nil},
		{"short key", map[string]string{"SESSION_KEYS": k1 + "," + short}, 0, []string{"SESSION_KEYS:", "key 2 of 2", "32 bytes"}},
		{"not base64", map[string]string{"SESSION_KEYS": "correct horse battery staple!"}, 0, []string{"SESSION_KEYS:", "key 1 of 1", "openssl rand -base64 32"}},
		{"empty entry", map[string]string{"SESSION_KEYS": k1 + ","}, 0, []string{"SESSION_KEYS:", "key 2 of 2"}},
		{"both", map[string]string{"SESSION_KEYS": k1, "SESSION_KEYS_FILE": file(k1)}, 0, []string{"SESSION_KEYS and SESSION_KEYS_FILE"}},
		{"missing file", map[string]string{"SESSION_KEYS_FILE": dir + "/nope"}, 0, []string{"SESSION_KEYS_FILE:", "nope"}},
		{"empty file", map[string]string{"SESSION_KEYS_FILE": file("# none yet\n")}, 0, []string{"SESSION_KEYS_FILE:", "no key"}},
		{"bad key in file", map[string]string{"SESSION_KEYS_FILE": file(k1 + "\n" + short + "\n")}, 0, []string{"SESSION_KEYS_FILE:", "key 2 of 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(env(tt.vars))
			if tt.errs == nil {
				if err != nil || len(cfg.SessionKeys) != tt.want {
					t.Fatalf("got %d keys, %v; want %d, nil", len(cfg.SessionKeys), err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want one saying %q", tt.errs)
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q: want it to say %q", err, want)
				}
			}
			for _, key := range []string{k1, k2, short, "correct horse"} {
				if strings.Contains(err.Error(), key) {
					t.Errorf("error %q shows a key", err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is more than one line", err)
			}
		})
	}
	// The order is the list's: the first signs.
	cfg, err := LoadConfig(env(map[string]string{"SESSION_KEYS": k2 + "," + k1}))
	if err != nil || string(cfg.SessionKeys[0]) != strings.Repeat("2", 48) {
		t.Errorf("first key: got %v, want the first listed", err)
	}
}

// Keys never reach a log line or a formatted Config.
func TestSessionKeysNeverPrinted(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", keyLen)
	cfg := DefaultConfig()
	cfg.SessionKeys = sessionKeys{[]byte(secret)}
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("config", "keys", cfg.SessionKeys, "cfg", cfg)
	encoded := base64.StdEncoding.EncodeToString([]byte(secret))
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%x", cfg.SessionKeys), log.String()} {
		if strings.Contains(out, secret) || strings.Contains(out, encoded) || strings.Contains(out, "737373") {
			t.Errorf("printed keys: %.200s", out)
		}
	}
}
