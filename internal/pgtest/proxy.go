package pgtest

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of PostgreSQL that a test can hang: after Hang it forwards
// nothing in either direction and accepts new connections without forwarding them, while every
// socket stays open. That is a network that stops delivering without resetting anything, which
// TCP keepalives do not notice (the proxy's kernel still answers them). Close (run when the test
// ends) closes every connection.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	hung   bool
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
	p := &Proxy{ln: ln, target: u.Host}
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

// Close closes the proxy and every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
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

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) || p.isHung() {
			continue // held open, never forwarded
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(server) {
			continue
		}
		go p.pipe(server, client)
		go p.pipe(client, server)
	}
}

// pipe copies src to dst until either closes; once hung, it reads on (so the sender sees no
// back-pressure) and delivers nothing.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.isHung() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !p.isHung() {
				_ = dst.Close()
			}
			return
		}
	}
}
