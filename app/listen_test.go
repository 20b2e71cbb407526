package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/internal/pgtest"
	"github.com/gofiber-template/sessions/storage"
)

// TestServeRefusesListenerOnAnotherDatabase: LISTEN_DATABASE_URL naming another migrated
// database would hear none of the changes made through DATABASE_URL; serve refuses to start,
// in one line that names the variable and what to do.
func TestServeRefusesListenerOnAnotherDatabase(t *testing.T) {
	t.Parallel()
	other := pgtest.NewURL(t)
	u, err := url.Parse(other)
	if err != nil {
		t.Fatal(err)
	}
	vars := withFreePorts(map[string]string{
		"DATABASE_URL":        pgtest.NewURL(t),
		"LISTEN_DATABASE_URL": other,
		"DB_QUERY_TIMEOUT":    "1s",
		"HOST":                "127.0.0.1",
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	served := false
	err = Run(ctx, []string{"serve"}, env(vars), strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{},
		Hooks{Ready: func(string, *storage.Store) { served = true; cancel() }})
	if served {
		t.Fatal("serve started with a listener on another database")
	}
	t.Logf("serve: %v", err)
	wantOneLineNaming(t, err, "LISTEN_DATABASE_URL", strings.TrimPrefix(u.Path, "/"), "same database")
}

// lockedBuffer is a bytes.Buffer that the server's logger and the test may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listenerLines returns the level and state of each session-listener line in a JSON log.
func listenerLines(t *testing.T, log string) []string {
	t.Helper()
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var rec struct{ Level, Msg, State, Reason string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if strings.HasPrefix(rec.Msg, "session listener:") {
			if rec.Reason == "" {
				t.Errorf("line %q gives no reason", line)
			}
			got = append(got, rec.Level+" "+rec.State)
		}
	}
	return got
}

// TestServeLogsListenerStates: the server's log says when the listener's connection is lost
// (WARN) and when memory serves again (INFO).
func TestServeLogsListenerStates(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	vars := withFreePorts(map[string]string{"DATABASE_URL": dbURL, "HOST": "127.0.0.1", "LOG_FORMAT": "json"})
	log := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *storage.Store, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve"}, env(vars), strings.NewReader(""), &bytes.Buffer{}, log,
			Hooks{Ready: func(_ string, s *storage.Store) { ready <- s }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var store *storage.Store
	select {
	case store = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}

	pool := pgtest.Pool(t, dbURL)
	pgtest.Exec(t, pool, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1", storage.ListenerApplicationName)
	deadline := time.Now().Add(10 * time.Second)
	for want := []string{"INFO serving", "WARN lost", "INFO serving"}; ; {
		got := listenerLines(t, log.String())
		if len(got) >= len(want) {
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Fatalf("got listener lines %q, want %q", got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got listener lines %q after 10s, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !store.Stats().Listening {
		t.Fatal("the store does not listen after its last line said memory serves")
	}
}
