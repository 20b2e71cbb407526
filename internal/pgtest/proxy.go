package pgtest

import (
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy in front of PostgreSQL that a test controls:
//
//   - Hang: it forwards nothing in either direction and accepts new connections without
//     forwarding them, while every socket stays open. That is a network that stops delivering
//     without resetting anything, which TCP keepalives do not notice (the proxy's kernel still
//     answers them).
//   - Delay: it delivers everything, in order, but late: a slow path, not a hung one.
//   - Down and Up: a server that stops (every connection closed, new ones closed at once) and
//     comes back.
//   - Retarget: new connections go to another server, and the current ones are closed, as a
//     failover to the wrong host would do.
//
// Close (run when the test ends) closes every connection. Its methods are safe for concurrent
// use.
type Proxy struct {
	ln   net.Listener
	done chan struct{} // closed by Close

	mu     sync.Mutex
	target string
	hung   bool
	down   bool
	delay  time.Duration
	closed bool
	conns  []net.Conn
}

// NewProxy starts a proxy to the server of dbURL and returns it; the proxy closes when the
// test ends.
func NewProxy(t testing.TB, dbURL string) *Proxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: u.Host, done: make(chan struct{})}
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// URL returns dbURL with its host and port replaced by the proxy's.
func (p *Proxy) URL(dbURL string) string {
	u, _ := url.Parse(dbURL)
	u.Host = p.ln.Addr().String()
	return u.String()
}

// Hang stops all forwarding, for good.
func (p *Proxy) Hang() {
	p.mu.Lock()
	p.hung = true
	p.mu.Unlock()
}

// Delay makes every byte read from now on, in either direction, reach the other side d after
// the proxy read it, in order; 0 forwards at once again (after what is already queued).
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Down closes every connection through the proxy and, until Up, closes each new one at once.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.closeConnsLocked()
}

// Up forwards new connections again after Down.
func (p *Proxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// Retarget sends new connections to the server of dbURL and closes every current one.
func (p *Proxy) Retarget(dbURL string) {
	u, _ := url.Parse(dbURL)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = u.Host
	p.closeConnsLocked()
}

// Close closes the proxy and every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.done)
	_ = p.ln.Close()
	p.closeConnsLocked()
}

func (p *Proxy) closeConnsLocked() {
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.down {
		_ = c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *Proxy) isHung() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hung
}

func (p *Proxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

func (p *Proxy) currentTarget() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) || p.isHung() {
			continue // closed, or held open and never forwarded
		}
		server, err := net.Dial("tcp", p.currentTarget())
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(server) {
			_ = client.Close()
			continue
		}
		go p.pipe(server, client)
		go p.pipe(client, server)
	}
}

// chunk is what one read returned, due at the other side at due; eof marks the end of src.
type chunk struct {
	b   []byte
	due time.Time
	eof bool
}

// pipe copies src to dst until either closes, each read delivered Delay after it was read;
// once hung, it reads on (so the sender sees no back-pressure) and delivers nothing.
func (p *Proxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 256)
	go p.deliver(dst, q)
	defer close(q)
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		hung := p.isHung()
		if n > 0 && !hung {
			q <- chunk{b: buf[:n], due: time.Now().Add(p.currentDelay())}
		}
		if err != nil {
			if !hung {
				q <- chunk{eof: true, due: time.Now().Add(p.currentDelay())}
			}
			return
		}
	}
}

// deliver writes the chunks of q to dst, each once it is due, and closes dst at the end of its
// source. After a failed write it drops the rest.
func (p *Proxy) deliver(dst net.Conn, q <-chan chunk) {
	failed := false
	for c := range q {
		if failed {
			continue
		}
		if d := time.Until(c.due); d > 0 {
			select {
			case <-time.After(d):
			case <-p.done:
				failed = true
				continue
			}
		}
		if c.eof {
			_ = dst.Close()
			failed = true
			continue
		}
		if _, err := dst.Write(c.b); err != nil {
			failed = true
		}
	}
}
