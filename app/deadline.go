package app

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineTick is how often the server's listener (coarseDeadlines) cuts the connections whose
// read or write deadline has passed: the most a timeout may be overrun.
const deadlineTick = 250 * time.Millisecond

// deadlineListener is a net.Listener whose connections record the read and write deadlines they
// are given instead of setting them on the socket (a clock read and a runtime timer update each:
// fasthttp sets three a request, and nearly all of them are moved before they are reached). A
// reaper cuts, every tick, each connection whose recorded deadline has passed, by setting one in
// the past on the socket: a Read or Write pending or to come fails with os.ErrDeadlineExceeded,
// as at a real deadline, at most a tick late.
//
// Close stops the reaper and hands the connections still open back to exact deadlines: the ones
// recorded go onto their sockets, later ones straight there. It is safe for concurrent use.
type deadlineListener struct {
	net.Listener
	tick time.Duration
	now  func() time.Time
	base time.Time // deadlines are kept as nanoseconds since base, monotonic when both are

	// coarse is the clock (ns since base) at the reaper's last pass: a deadline less than two
	// ticks after it may come before the next pass, so it goes onto the socket at once.
	coarse atomic.Int64

	mu      sync.Mutex
	conns   map[*deadlineConn]struct{} // the open connections, while the listener is open
	closed  bool
	scratch []*deadlineConn // the reaper's copy of conns

	stop      chan struct{}
	done      chan struct{} // closed when the reaper returns; nil when none was started
	closeOnce sync.Once
}

// coarseDeadlines wraps ln so that a read or write that outlasts its timeout is cut at most one
// tick after it, instead of exactly, which saves a runtime timer update for every deadline that
// fasthttp sets. It starts the reaper, which the returned listener's Close stops.
func coarseDeadlines(ln net.Listener, tick time.Duration) *deadlineListener {
	l := newDeadlineListener(ln, tick, time.Now)
	l.done = make(chan struct{})
	ticker := time.NewTicker(tick)
	go func() {
		defer close(l.done)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				l.reap()
			case <-l.stop:
				return
			}
		}
	}()
	return l
}

// newDeadlineListener is coarseDeadlines without the reaper: nothing is cut until reap is
// called.
func newDeadlineListener(ln net.Listener, tick time.Duration, now func() time.Time) *deadlineListener {
	return &deadlineListener{
		Listener: ln,
		tick:     tick,
		now:      now,
		base:     now(),
		conns:    make(map[*deadlineConn]struct{}),
		stop:     make(chan struct{}),
	}
}

// Accept waits for the next connection and returns it wrapped; its errors are the wrapped
// listener's.
func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// Close closes the wrapped listener, stops the reaper and waits for it, and puts on each
// connection still open the deadlines it recorded, exactly. It returns the wrapped listener's
// error, the first time; later calls return nil.
func (l *deadlineListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		err = l.Listener.Close()
		close(l.stop)
		if l.done != nil {
			<-l.done
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.closed = true
		for c := range l.conns {
			c.mu.Lock()
			c.exact()
			c.mu.Unlock()
		}
		clear(l.conns)
	})
	return err
}

// wrap registers c, or, once the listener is closed, returns it with exact deadlines.
func (l *deadlineListener) wrap(c net.Conn) *deadlineConn {
	dc := &deadlineConn{Conn: c, l: l}
	l.mu.Lock()
	if l.closed {
		dc.direct = true
	} else {
		l.conns[dc] = struct{}{}
	}
	l.mu.Unlock()
	return dc
}

// reap reads the clock and cuts every connection whose recorded deadline is not after it.
func (l *deadlineListener) reap() {
	now := int64(l.now().Sub(l.base))
	l.coarse.Store(now)
	l.mu.Lock()
	l.scratch = l.scratch[:0]
	for c := range l.conns {
		l.scratch = append(l.scratch, c)
	}
	l.mu.Unlock()
	for i, c := range l.scratch {
		c.mu.Lock()
		if !c.direct { // closed since the copy
			c.read.reap(now, c.Conn.SetReadDeadline)
			c.write.reap(now, c.Conn.SetWriteDeadline)
		}
		c.mu.Unlock()
		l.scratch[i] = nil // no reference to a closed connection outlives the pass
	}
}

// deadlineConn is a connection of a deadlineListener. Its Set*Deadline methods record the
// deadline, unless it is zero or near; what the socket holds changes only when the reaper cuts
// the connection, when a new deadline undoes a cut, and for zero or near deadlines.
type deadlineConn struct {
	net.Conn
	l         *deadlineListener
	closeOnce sync.Once

	mu          sync.Mutex // held by each Set*Deadline, and by the reaper from its check of a deadline to its cut
	read, write connDeadline
	direct      bool // the socket holds the deadlines exactly: the listener or the conn is closed
}

// connDeadline is one direction's deadline as a deadlineConn keeps it.
type connDeadline struct {
	at  int64 // ns since the listener's base that the reaper cuts at; 0 = none to enforce
	set bool  // the socket holds a deadline (a cut, or a near one) that a new one must undo
}

// pastDeadline is the deadline a cut puts on the socket.
var pastDeadline = time.Unix(1, 0)

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.setDeadline(&c.read, t, c.Conn.SetReadDeadline)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.setDeadline(&c.write, t, c.Conn.SetWriteDeadline)
}

// SetDeadline sets both deadlines, as SetReadDeadline and SetWriteDeadline do.
func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.direct {
		return c.Conn.SetDeadline(t)
	}
	err := c.setDeadline(&c.read, t, c.Conn.SetReadDeadline)
	if werr := c.setDeadline(&c.write, t, c.Conn.SetWriteDeadline); err == nil {
		err = werr
	}
	return err
}

// setDeadline records t as d, with c.mu held; apply sets d's direction on the socket. A zero t
// clears d (and the socket, when it holds one); one less than two ticks after the reaper's last
// pass goes onto the socket exactly.
func (c *deadlineConn) setDeadline(d *connDeadline, t time.Time, apply func(time.Time) error) error {
	if c.direct {
		return apply(t)
	}
	if t.IsZero() {
		d.at = 0
		if d.set {
			d.set = false
			return apply(t)
		}
		return nil
	}
	at := int64(t.Sub(c.l.base))
	if at <= c.l.coarse.Load()+2*int64(c.l.tick) {
		d.at, d.set = 0, true
		return apply(t)
	}
	d.at = at
	if d.set {
		d.set = false
		return apply(time.Time{})
	}
	return nil
}

// reap cuts d's direction of the socket when its deadline is not after now, with c.mu held.
func (d *connDeadline) reap(now int64, apply func(time.Time) error) {
	if d.at != 0 && d.at <= now {
		_ = apply(pastDeadline) // an error means a closed connection: nothing left to cut
		d.at, d.set = 0, true
	}
}

// exact puts the recorded deadlines onto the socket and makes the ones to come go there
// directly, with c.mu held.
func (c *deadlineConn) exact() {
	if c.direct {
		return
	}
	c.direct = true
	if c.read.at != 0 {
		_ = c.Conn.SetReadDeadline(c.l.base.Add(time.Duration(c.read.at)))
	}
	if c.write.at != 0 {
		_ = c.Conn.SetWriteDeadline(c.l.base.Add(time.Duration(c.write.at)))
	}
}

// Close closes the connection and unregisters it from the listener, once.
func (c *deadlineConn) Close() error {
	c.closeOnce.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.mu.Lock()
		c.direct = true // a deadline set after Close gets the socket's error
		c.mu.Unlock()
	})
	return c.Conn.Close()
}

// ReadFrom lets io.Copy to the connection, and fasthttp's file serving, use the socket's own
// ReadFrom (sendfile or splice on Linux).
func (c *deadlineConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

var (
	_ net.Listener  = (*deadlineListener)(nil)
	_ io.ReaderFrom = (*deadlineConn)(nil)
)
