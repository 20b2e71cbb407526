package app

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber-template/sessions/internal/testclock"
)

// testTick is the tick of the listeners under test. The clock is a testclock.Clock that starts at the
// real time, so a deadline a tick ahead of it is an hour ahead of the real one: a socket never
// reaches a recorded deadline by itself, and only reap, or a deadline put on it at once, cuts.
const testTick = time.Hour

// newTestListener returns a deadlineListener without a reaper (the test calls reap) over a TCP
// listener on the loopback interface, on a fakeClock; the test's end closes it.
func newTestListener(t *testing.T) (*deadlineListener, *testclock.Clock) {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clock := testclock.New(time.Now())
	l := newDeadlineListener(tcp, testTick, clock.Now)
	t.Cleanup(func() { _ = l.Close() })
	return l, clock
}

// acceptPair dials l and returns both ends: the accepted connection, as l wraps it, and the
// client's; the test's end closes them.
func acceptPair(t *testing.T, l *deadlineListener) (*deadlineConn, net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*deadlineConn), client
}

// pendingRead starts a one-byte Read of c and returns the channel its error comes on.
func pendingRead(c net.Conn) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		errc <- err
	}()
	return errc
}

// readResult waits for pendingRead's error, and fails the test if none comes within 10 s (a
// bound for a stuck test, not a measurement).
func readResult(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Read still pending after 10 s")
		return nil
	}
}

// mustTimeout fails the test unless err is a deadline's: a net.Error that is a Timeout and
// os.ErrDeadlineExceeded.
func mustTimeout(t *testing.T, err error, what string) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: got %v, want a timeout (os.ErrDeadlineExceeded)", what, err)
	}
}

// mustReadByte sends a byte from client and fails the test unless c's pending Read (errc)
// gets it: c was not cut.
func mustReadByte(t *testing.T, client net.Conn, errc <-chan error, what string) {
	t.Helper()
	if _, err := client.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if err := readResult(t, errc); err != nil {
		t.Fatalf("%s: Read got %v, want the byte sent", what, err)
	}
}

// registered is how many connections l keeps track of.
func registered(l *deadlineListener) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

func TestDeadlinePassedCutsPendingRead(t *testing.T) {
	t.Parallel()
	l, clock := newTestListener(t)
	c, _ := acceptPair(t, l)
	if err := c.SetReadDeadline(clock.Now().Add(3 * testTick)); err != nil {
		t.Fatal(err)
	}
	errc := pendingRead(c)
	clock.Advance(3 * testTick)
	l.reap()
	mustTimeout(t, readResult(t, errc), "Read pending when the deadline passed")
	_, err := c.Read(make([]byte, 1))
	mustTimeout(t, err, "a Read after the cut")
}

func TestDeadlinePassedCutsWrite(t *testing.T) {
	t.Parallel()
	l, clock := newTestListener(t)
	c, client := acceptPair(t, l)
	if err := c.SetWriteDeadline(clock.Now().Add(3 * testTick)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * testTick)
	l.reap()
	_, err := c.Write([]byte("x"))
	mustTimeout(t, err, "Write after its deadline passed")
	// The read direction has its own deadline, which did not pass.
	errc := pendingRead(c)
	mustReadByte(t, client, errc, "Read after a cut of writes")
}

func TestDeadlineMovedBeforeTickIsNotCut(t *testing.T) {
	t.Parallel()
	l, clock := newTestListener(t)
	c, client := acceptPair(t, l)
	if err := c.SetReadDeadline(clock.Now().Add(3 * testTick)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * testTick)
	if err := c.SetReadDeadline(clock.Now().Add(3 * testTick)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * testTick) // past the first deadline, not the second
	l.reap()
	mustReadByte(t, client, pendingRead(c), "Read whose deadline was moved before it passed")
}

func TestZeroDeadlineClears(t *testing.T) {
	t.Parallel()
	l, clock := newTestListener(t)
	c, client := acceptPair(t, l)
	if err := c.SetReadDeadline(clock.Now().Add(3 * testTick)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * testTick)
	l.reap()
	mustReadByte(t, client, pendingRead(c), "Read whose deadline was cleared")
}

func TestImmediateDeadlineAppliesAtOnce(t *testing.T) {
	t.Parallel()
	l, clock := newTestListener(t)
	c, _ := acceptPair(t, l)
	errc := pendingRead(c)
	// Already due: it wakes the pending Read with no reap.
	if err := c.SetReadDeadline(clock.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	mustTimeout(t, readResult(t, errc), "Read pending when a past deadline was set")
}

// TestNearDeadlineGoesOntoTheSocket: a deadline that the next pass of the reaper might come too
// late for is the socket's, exact; a later one stays off the socket.
func TestNearDeadlineGoesOntoTheSocket(t *testing.T) {
	t.Parallel()
	l, clock := newTestListener(t)
	spy := &spyConn{}
	c := l.wrap(spy)
	near := clock.Now().Add(testTick / 2)
	if err := c.SetReadDeadline(near); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(clock.Now().Add(3 * testTick)); err != nil {
		t.Fatal(err)
	}
	if r, w := spy.deadlines(); !r.Equal(near) || !w.IsZero() {
		t.Fatalf("socket deadlines: read %v, write %v; want read %v, no write deadline", r, w, near)
	}
}

// TestNewDeadlineUndoesCut: after a cut, a later deadline or none lets Read work again.
func TestNewDeadlineUndoesCut(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		next func(now time.Time) time.Time
	}{
		{"later deadline", func(now time.Time) time.Time { return now.Add(3 * testTick) }},
		{"no deadline", func(time.Time) time.Time { return time.Time{} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, clock := newTestListener(t)
			c, client := acceptPair(t, l)
			if err := c.SetReadDeadline(clock.Now().Add(3 * testTick)); err != nil {
				t.Fatal(err)
			}
			clock.Advance(3 * testTick)
			l.reap()
			_, err := c.Read(make([]byte, 1))
			mustTimeout(t, err, "Read after the cut")
			if err := c.SetReadDeadline(tt.next(clock.Now())); err != nil {
				t.Fatal(err)
			}
			l.reap()
			mustReadByte(t, client, pendingRead(c), "Read after a new deadline")
		})
	}
}

func TestCloseUnregisters(t *testing.T) {
	t.Parallel()
	l, _ := newTestListener(t)
	a, _ := acceptPair(t, l)
	b, _ := acceptPair(t, l)
	if n := registered(l); n != 2 {
		t.Fatalf("%d connections registered after two accepts, want 2", n)
	}
	for range 2 {
		_ = a.Close()
	}
	if n := registered(l); n != 1 {
		t.Fatalf("%d connections registered after closing one twice, want 1", n)
	}
	_ = b.Close()
	if n := registered(l); n != 0 {
		t.Fatalf("%d connections registered after closing both, want 0", n)
	}
	if err := a.SetReadDeadline(time.Now().Add(time.Minute)); err == nil {
		t.Error("SetReadDeadline on a closed connection returned nil, want the socket's error")
	}
}

// TestListenerCloseHandsOver: closing the listener stops its reaper and puts the deadlines its
// open connections recorded onto them, exactly; later deadlines go straight to the socket.
func TestListenerCloseHandsOver(t *testing.T) {
	t.Parallel()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := coarseDeadlines(tcp, testTick)
	spy := &spyConn{}
	c := l.wrap(spy)
	read, write := time.Now().Add(3*testTick), time.Now().Add(4*testTick)
	if err := c.SetReadDeadline(read); err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteDeadline(write); err != nil {
		t.Fatal(err)
	}
	if r, w := spy.deadlines(); !r.IsZero() || !w.IsZero() {
		t.Fatalf("before Close the socket holds read %v, write %v; want none", r, w)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.done:
	default:
		t.Fatal("the reaper still runs after Close returned")
	}
	if r, w := spy.deadlines(); !r.Equal(read) || !w.Equal(write) {
		t.Fatalf("after Close the socket holds read %v, write %v; want %v, %v", r, w, read, write)
	}
	later := read.Add(testTick)
	if err := c.SetReadDeadline(later); err != nil {
		t.Fatal(err)
	}
	if r, _ := spy.deadlines(); !r.Equal(later) {
		t.Fatalf("a deadline set after Close: the socket holds %v, want %v", r, later)
	}
	if n := registered(l); n != 0 {
		t.Fatalf("%d connections registered after Close, want 0", n)
	}
	if !l.wrap(&spyConn{}).direct {
		t.Fatal("a connection accepted after Close records its deadlines, want them on the socket")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("a second Close: %v, want nil", err)
	}
}

// TestDeadlineRace moves deadlines on many connections while the reaper passes without a pause.
// In each round a mover sets a deadline that the next pass finds due, then moves it far ahead:
// at once, after a few yields, after a pass, or after it was cut (which the move must undo).
// Two passes after the move, the socket must hold no deadline: a pass that cut the connection
// after the move checked a deadline that was no longer its own. Run it with -race: the check
// and the cut must share the connection's lock with the move.
func TestDeadlineRace(t *testing.T) {
	t.Parallel()
	l, clock := newTestListener(t)
	const movers, rounds = 8, 1000
	var passes atomic.Int64
	stop := make(chan struct{})
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			clock.Advance(3 * testTick) // every deadline recorded before the pass is due
			l.reap()
			passes.Add(1)
			runtime.Gosched()
		}
	}()
	// afterPasses returns once n passes have ended, the first of them started after the call.
	afterPasses := func(n int64) {
		for end := passes.Load() + n; passes.Load() < end; {
			runtime.Gosched()
		}
	}

	var wg sync.WaitGroup
	var cuts atomic.Int64
	for i := range movers {
		spy := &spyConn{}
		c := l.wrap(spy)
		set, get := c.SetReadDeadline, func() time.Time { r, _ := spy.deadlines(); return r }
		if i%2 == 1 {
			set, get = c.SetWriteDeadline, func() time.Time { _, w := spy.deadlines(); return w }
		}
		wg.Go(func() {
			for r := range rounds {
				soon := clock.Now().Add(2*testTick + time.Nanosecond)
				if err := set(soon); err != nil {
					t.Error(err)
					return
				}
				switch r % 4 {
				case 0: // at once
				case 1:
					for range r % 17 {
						runtime.Gosched()
					}
				case 2:
					afterPasses(1)
				case 3:
					afterPasses(2)
					switch got := get(); {
					case got.Equal(pastDeadline):
						cuts.Add(1)
					case got.Equal(soon): // a pass read the clock between Now and set: it went on the socket
					default:
						t.Errorf("a deadline passed and two passes later the socket holds %v, want a cut", got)
						return
					}
				}
				far := clock.Now().Add(1000 * time.Hour)
				if err := set(far); err != nil {
					t.Error(err)
					return
				}
				afterPasses(2)
				// The reaper may have run the clock past far while this mover waited for a core.
				if got := get(); !got.IsZero() && clock.Now().Before(far) {
					t.Errorf("round %d: the deadline was moved to %v, and before it the socket holds %v, want none", r, far, got)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-reaped
	if cuts.Load() == 0 {
		t.Fatal("no deadline was cut: the test checked nothing")
	}
}

// spyConn is a net.Conn that only keeps the deadlines it is given; every other method but
// Close panics. It is safe for concurrent use.
type spyConn struct {
	net.Conn
	mu          sync.Mutex
	read, write time.Time
}

func (s *spyConn) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read = t
	return nil
}

func (s *spyConn) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write = t
	return nil
}

func (s *spyConn) SetDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read, s.write = t, t
	return nil
}

func (s *spyConn) Close() error { return nil }

func (s *spyConn) deadlines() (read, write time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read, s.write
}

// BenchmarkConnDeadlines measures a SetReadDeadline 10 s ahead, as fasthttp sets each of a
// request's three, on a TCP connection: the socket's own (Socket) and through a
// deadlineListener (Coarse), its reaper running. Now is the clock read of the deadline alone,
// which both include.
func BenchmarkConnDeadlines(b *testing.B) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	l := coarseDeadlines(tcp, deadlineTick)
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	c, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var sink time.Time
	b.Run("Now", func(b *testing.B) {
		loopCPU(b, func() { sink = time.Now().Add(10 * time.Second) })
	})
	_ = sink
	for _, bb := range []struct {
		name string
		conn net.Conn
	}{{"Socket", c.(*deadlineConn).Conn}, {"Coarse", c}} {
		b.Run(bb.name, func(b *testing.B) {
			loopCPU(b, func() {
				if err := bb.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
