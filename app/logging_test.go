package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A line logged with a request's context carries its id once, whether or not the logger
// already carries it (handlers.Logger's does); a line without one carries none.
func TestRequestIDHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := newLogger(Config{LogFormat: "text"}, &buf)
	ctx := requestContext{context.Background(), "req-1"}
	log.InfoContext(ctx, "from the context")
	log.With("request_id", "req-1").InfoContext(ctx, "from the logger and the context")
	log.With("user", 7).InfoContext(ctx, "other attributes")
	log.Info("outside a request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for i, want := range []int{1, 1, 1, 0} {
		if got := strings.Count(lines[i], "request_id=req-1"); got != want {
			t.Errorf("line %q: request_id %d times, want %d", lines[i], got, want)
		}
	}
}
