package app

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// lineWriter is the writer of a JSON logger: slog's handler writes its records through Write,
// and requestLog writes the request lines it encodes itself through writeRequest. Lines never
// overlap and keep their order.
//
// A record (a security event, a warning, an error, anything logged through slog) is written
// synchronously, in one Write of the underlying writer, before its caller goes on. A request
// line is too, unless batching is on (batch, LOG_FLUSH_INTERVAL): then it joins a buffer that
// one goroutine writes when it holds flushSize bytes, at each tick, before any record (so
// records and request lines keep their order), and when batching stops. What a crash can lose
// is the request lines of the last tick (up to bufferLimit of them while the underlying writer
// is behind), never a record. When the buffer holds bufferLimit
// bytes, because the underlying writer is slower than the requests, a request line that does
// not fit is dropped and counted (Dropped), and once the writer has caught up one warning says
// how many went.
type lineWriter struct {
	wmu sync.Mutex // held across every write to w
	w   io.Writer
	out []byte // the bytes being written; wmu's

	mu       sync.Mutex
	batched  bool          // request lines go to pending
	pending  []byte        // request lines not yet written, when batched
	kick     chan struct{} // a full buffer wakes the flusher; capacity 1
	kicked   bool          // a kick is on its way
	dropped  atomic.Uint64
	reported uint64        // dropped lines already warned of; the flusher's
	warn     func(uint64)  // logs the warning of dropped lines; set by newLogger
	stop     chan struct{} // closed to stop the flusher
	stopped  chan struct{} // closed when it has
}

// The request-line buffer's sizes: written when it holds flushSize bytes (about 150 lines),
// lines dropped past bufferLimit (about 5,000 lines).
const (
	flushSize   = 32 << 10
	bufferLimit = 1 << 20
)

// Write writes p, after the request lines waiting to be written.
func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.wmu.Lock()
	defer lw.wmu.Unlock()
	lw.takePending()
	if len(lw.out) == 0 {
		return lw.w.Write(p)
	}
	lw.out = append(lw.out, p...)
	if err := lw.writeOut(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// takePending moves the request lines waiting into out, for the caller, who holds wmu, to
// write, and lets the next full batch wake the flusher again.
func (lw *lineWriter) takePending() {
	lw.mu.Lock()
	lw.out, lw.pending = lw.pending, lw.out[:0]
	select {
	case <-lw.kick: // when the flusher did not take it
	default:
	}
	lw.kicked = false
	lw.mu.Unlock()
}

// writeOut writes out, if it holds anything, and empties it; a buffer grown while the writer
// was slow is not kept. The caller holds wmu.
func (lw *lineWriter) writeOut() error {
	var err error
	if len(lw.out) > 0 {
		_, err = lw.w.Write(lw.out)
	}
	lw.out = lw.out[:0]
	if cap(lw.out) > 4*flushSize {
		lw.out = nil
	}
	return err
}

// writeRequest writes l as slog's JSON handler would, or adds it to the batch, and reports
// false, writing nothing, when it cannot promise the same bytes (requestLine.appendJSON).
func (lw *lineWriter) writeRequest(l *requestLine) bool {
	lw.mu.Lock()
	if lw.batched {
		n := len(lw.pending)
		var ok bool
		if lw.pending, ok = l.appendJSON(lw.pending); !ok {
			lw.mu.Unlock()
			return false
		}
		switch {
		case len(lw.pending) > bufferLimit:
			lw.pending = lw.pending[:n]
			lw.dropped.Add(1)
		case len(lw.pending) >= flushSize && !lw.kicked:
			lw.kicked = true
			lw.kick <- struct{}{} // never blocks: capacity 1, and kicked says it is empty
		}
		lw.mu.Unlock()
		return true
	}
	lw.mu.Unlock()

	lw.wmu.Lock()
	defer lw.wmu.Unlock()
	lw.takePending() // lines batched before batching stopped go first
	var ok bool
	lw.out, ok = l.appendJSON(lw.out)
	_ = lw.writeOut() // a log line that cannot be written is not the client's problem
	return ok
}

// Dropped is the number of request lines dropped because the buffer was full.
func (lw *lineWriter) Dropped() uint64 { return lw.dropped.Load() }

// batch turns batching on: request lines are written at each receive from ticks, when
// flushSize bytes wait, before any record, and by the returned stop, which writes what is left
// and turns batching off (request lines are then written synchronously again). It must not be
// called again before stop.
func (lw *lineWriter) batch(ticks <-chan time.Time) (stop func()) {
	lw.mu.Lock()
	lw.batched, lw.kick = true, make(chan struct{}, 1)
	lw.stop, lw.stopped = make(chan struct{}), make(chan struct{})
	lw.mu.Unlock()
	go lw.flushLoop(ticks)
	return func() {
		close(lw.stop)
		<-lw.stopped
		lw.mu.Lock()
		lw.batched = false
		lw.mu.Unlock()
		lw.flush()
	}
}

func (lw *lineWriter) flushLoop(ticks <-chan time.Time) {
	defer close(lw.stopped)
	for {
		select {
		case <-lw.stop:
			return
		case <-lw.kick:
		case <-ticks:
		}
		lw.flush()
	}
}

// flush writes the request lines waiting, then warns of the lines dropped since the last
// warning, if any.
func (lw *lineWriter) flush() {
	lw.wmu.Lock()
	lw.takePending()
	_ = lw.writeOut() // as writeRequest: the client's requests go on
	lw.wmu.Unlock()
	if d := lw.dropped.Load(); d > lw.reported && lw.warn != nil {
		lw.warn(d - lw.reported)
		lw.reported = d
	}
}
