package app

import (
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// batchedLogger returns a JSON logger writing to the returned buffer, its request lines
// batched and flushed at each send on ticks (or by stop).
func batchedLogger(t *testing.T, w *syncBuffer) (log *slog.Logger, lw *lineWriter, ticks chan time.Time, stop func()) {
	t.Helper()
	log = newLogger(Config{LogFormat: "json", LogLevel: slog.LevelInfo}, w)
	lw = requestLines(log)
	if lw == nil {
		t.Fatal("a JSON logger without its line writer")
	}
	ticks = make(chan time.Time)
	stop = lw.batch(ticks)
	return log, lw, ticks, stop
}

// flushNow makes the flusher write what waits and returns once it has: it takes a tick only
// after finishing the flush of the one before.
func flushNow(ticks chan time.Time) {
	ticks <- time.Time{}
	ticks <- time.Time{}
}

func testLine(i int) *requestLine {
	return &requestLine{time: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), id: "line-" + strconv.Itoa(i),
		method: "GET", route: "/me", status: 200, client: "192.0.2.1"}
}

// jsonLines returns the "msg" and "request_id" of each line written.
func jsonLines(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		id, _ := rec["request_id"].(string)
		out = append(out, rec["msg"].(string)+" "+id)
	}
	return out
}

// Batched request lines wait for a tick, a record (which they precede), or the stop; records
// are written at once; after the stop, request lines are written at once again.
func TestBatchedRequestLines(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	log, lw, ticks, stop := batchedLogger(t, &buf)
	lw.writeRequest(testLine(1))
	lw.writeRequest(testLine(2))
	if got := buf.String(); got != "" {
		t.Fatalf("written before any flush: %q", got)
	}
	log.Warn("a record")
	want := []string{"request line-1", "request line-2", "a record "}
	if got := jsonLines(t, buf.String()); !slices.Equal(got, want) {
		t.Fatalf("after a record: %q, want %q", got, want)
	}
	lw.writeRequest(testLine(3))
	flushNow(ticks)
	want = append(want, "request line-3")
	if got := jsonLines(t, buf.String()); !slices.Equal(got, want) {
		t.Fatalf("after a tick: %q, want %q", got, want)
	}
	lw.writeRequest(testLine(4))
	stop()
	want = append(want, "request line-4")
	if got := jsonLines(t, buf.String()); !slices.Equal(got, want) {
		t.Fatalf("after the stop: %q, want %q", got, want)
	}
	lw.writeRequest(testLine(5))
	want = append(want, "request line-5")
	if got := jsonLines(t, buf.String()); !slices.Equal(got, want) {
		t.Fatalf("after the stop, a request line: %q, want %q", got, want)
	}
}

// A batch is written once it holds flushSize bytes, without waiting for a tick: at least the
// lines that filled it, in order; stop writes the rest.
func TestBatchWrittenWhenFull(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	_, lw, _, stop := batchedLogger(t, &buf)
	full, size := 0, 0 // the lines that fill a batch
	for ; size < flushSize; full++ {
		line, _ := testLine(full).appendJSON(nil)
		size += len(line)
	}
	n := full + 50
	for i := range n {
		lw.writeRequest(testLine(i))
	}
	for deadline := time.Now().Add(10 * time.Second); buf.String() == "" && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	written := jsonLines(t, buf.String())
	if len(written) < full {
		t.Fatalf("%d lines written with no tick, want at least the %d that filled the batch", len(written), full)
	}
	stop()
	written = jsonLines(t, buf.String())
	if len(written) != n {
		t.Fatalf("%d lines written after the stop, want %d", len(written), n)
	}
	for i, l := range written {
		if want := "request line-" + strconv.Itoa(i); l != want {
			t.Fatalf("line %d is %q, want %q", i, l, want)
		}
	}
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	syncBuffer
	entered chan struct{} // receives once a Write has started
	release chan struct{}
	once    sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.syncBuffer.Write(p)
}

// While the writer is stuck, request lines beyond bufferLimit are dropped, counted, and warned
// of once the writer is back; every line not dropped is written, in order.
func TestBatchDropsWhenWriterFallsBehind(t *testing.T) {
	t.Parallel()
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	log := newLogger(Config{LogFormat: "json", LogLevel: slog.LevelInfo}, w)
	lw := requestLines(log)
	ticks := make(chan time.Time)
	stop := lw.batch(ticks)
	lw.writeRequest(testLine(0))
	ticks <- time.Time{} // the flusher writes line 0 and blocks in Write
	<-w.entered
	var one []byte
	one, _ = testLine(999999).appendJSON(one)
	total := bufferLimit/len(one) + 100
	for i := 1; i <= total; i++ {
		lw.writeRequest(testLine(i))
	}
	dropped := lw.Dropped()
	if dropped == 0 {
		t.Fatalf("no line dropped with %d lines behind a stuck writer", total)
	}
	close(w.release)
	stop()
	got := jsonLines(t, w.String())
	kept := total + 1 - int(dropped)
	if len(got) != kept+1 {
		t.Fatalf("%d lines written, want the %d kept and a warning", len(got), kept)
	}
	for i := range kept {
		if want := "request line-" + strconv.Itoa(i); got[i] != want {
			t.Fatalf("line %d is %q, want %q", i, got[i], want)
		}
	}
	var warning map[string]any
	last := strings.Split(strings.TrimSpace(w.String()), "\n")
	if err := json.Unmarshal([]byte(last[len(last)-1]), &warning); err != nil {
		t.Fatal(err)
	}
	if warning["level"] != "WARN" || warning["count"] != float64(dropped) {
		t.Errorf("last line %v, want a WARN with count %d", warning, dropped)
	}
}

// A request line written just as batching stops (after batched is off, before the last
// flush) comes after the lines batched before it.
func TestRequestLineAfterBatchingStopsKeepsOrder(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	_, lw, _, stop := batchedLogger(t, &buf)
	lw.writeRequest(testLine(1))
	lw.writeRequest(testLine(2))
	lw.mu.Lock()
	lw.batched = false // what stop does first
	lw.mu.Unlock()
	lw.writeRequest(testLine(3))
	stop()
	want := []string{"request line-1", "request line-2", "request line-3"}
	if got := jsonLines(t, buf.String()); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
