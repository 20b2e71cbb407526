package handlers_test

import (
	"slices"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/handlers"
)

func TestListSessions(t *testing.T) {
	t.Parallel()
	login := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	sessions := &fakeSessions{list: []handlers.Session{{
		ID: "h1", Created: login, LastUsed: login.Add(time.Minute),
		UserAgent: "Firefox", Address: "192.0.2.7", Current: true,
	}}}
	status, body := send(t, newApp(&fakeGate{}, sessions), "GET", "/sessions", "", "")
	want := `[{"id":"h1","created":"2026-11-26T09:30:00Z","last_used":"2026-11-26T09:31:00Z",` +
		`"user_agent":"Firefox","address":"192.0.2.7","current":true}]`
	if status != 200 || body != want {
		t.Errorf("got %d %s, want 200 %s", status, body, want)
	}

	status, body = send(t, newApp(&fakeGate{}, &fakeSessions{}), "GET", "/sessions", "", "")
	if status != 200 || body != `[]` {
		t.Errorf("no sessions: got %d %s, want 200 []", status, body)
	}
}

func TestEndSession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path string
		want       int
		ended      []string
	}{
		{"one of the user's", "/sessions/h1", 204, []string{"h1"}},
		{"unknown", "/sessions/h2", 404, nil},
		{"escaped", "/sessions/h%2F1", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sessions := &fakeSessions{list: []handlers.Session{{ID: "h1"}}}
			status, body := send(t, newApp(&fakeGate{}, sessions), "DELETE", tt.path, "", "")
			if status != tt.want {
				t.Errorf("got %d %s, want %d", status, body, tt.want)
			}
			if !slices.Equal(sessions.endedOne, tt.ended) {
				t.Errorf("ended %q, want %q", sessions.endedOne, tt.ended)
			}
		})
	}
}
