package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ListenerApplicationName is the application_name of the listening connection.
const ListenerApplicationName = "sessions-listener"

// listener keeps one dedicated connection LISTENing on Channel and applies every notification
// to its Store. Notifications sent while it is not listening are lost, so whenever it is not
// listening the Store's memory tier is flushed and stays off; it comes back on only once LISTEN
// is active again.
//
// While listening, it holds a lease: memory serves only until Lease after the listener last
// heard from Postgres. Every notification renews it; after HealthInterval of silence a ping
// does, once every notification that arrived before the ping's answer has been applied. A
// connection that hangs without a reset therefore stops memory from serving within Lease,
// whatever TCP does; the ping's failure (or TCP keepalives, for a vanished peer) then makes the
// listener reconnect.
type listener struct {
	s    *Store
	conf *pgx.ConnConfig
}

func newListener(s *Store, pool *pgxpool.Pool) (*listener, error) {
	var conf *pgx.ConnConfig
	if s.cfg.ListenURL != "" {
		c, err := pgx.ParseConfig(s.cfg.ListenURL)
		if err != nil {
			// The URL may hold a password: do not echo it.
			return nil, errors.New("storage: listen URL is not a valid connection string")
		}
		conf = c
	} else {
		conf = pool.Config().ConnConfig.Copy()
	}
	// The listener's health pings are not the application's statements, and operators should
	// be able to tell its connection apart in pg_stat_activity.
	conf.Tracer = nil
	if conf.RuntimeParams == nil {
		conf.RuntimeParams = map[string]string{}
	}
	conf.RuntimeParams["application_name"] = ListenerApplicationName
	// pgconn's default dialer probes an idle connection only after 5 minutes; the listener's
	// must notice a vanished peer in seconds. Wrap whatever dialer is configured.
	dial := conf.DialFunc
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conf.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok && err == nil {
			_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 3})
		}
		return c, err
	}
	return &listener{s: s, conf: conf}, nil
}

// run listens until the Store closes, reconnecting with a backoff between ReconnectMin and
// ReconnectMax. It sends on ready once: nil when it first listens, or the error of its first
// attempt, after which it returns.
func (l *listener) run(ready chan<- error) {
	s := l.s
	first := true
	backoff := s.cfg.ReconnectMin
	for {
		err := l.listen(func() {
			s.setCoherent(true)
			if first {
				first = false
				ready <- nil
			} else {
				s.stats.reconnects.Add(1)
			}
			backoff = s.cfg.ReconnectMin
		})
		s.setCoherent(false)
		if s.life.Err() != nil {
			if first {
				ready <- ErrClosed
			}
			return
		}
		if first {
			ready <- err
			return
		}
		select {
		case <-s.life.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.ReconnectMax)
	}
}

// listen connects, LISTENs, calls listening, then applies notifications until the connection
// fails or the Store closes.
func (l *listener) listen(listening func()) error {
	s := l.s
	ctx, cancel := s.callContext(context.Background())
	conn, err := pgx.ConnectConfig(ctx, l.conf)
	cancel()
	if err != nil {
		return fmt.Errorf("connect to %s: %w", l.conf.Host, err)
	}
	defer func() {
		// The connection may be hung: Close must not wait on it for long.
		ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.QueryTimeout, closeTimeout))
		_ = conn.Close(ctx)
		cancel()
	}()
	sent := time.Now()
	ctx, cancel = s.callContext(context.Background())
	_, err = conn.Exec(ctx, "LISTEN "+Channel)
	cancel()
	if err != nil {
		return fmt.Errorf("listen on %s: %w", l.conf.Host, err)
	}
	s.callHook("listener:listening", "")
	listening()
	s.renewLease(sent)

	for {
		wctx, cancel := context.WithTimeout(s.life, s.cfg.HealthInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case s.life.Err() != nil:
			return s.life.Err()
		case err == nil:
			received := time.Now()
			s.apply(n.Payload)
			s.renewLease(received)
		case pgconn.Timeout(err):
			// Silence: prove the connection alive. The answer proves every notification sent
			// before it has arrived; apply those before renewing.
			sent := time.Now()
			pctx, cancel := s.callContext(context.Background())
			err = conn.Ping(pctx)
			cancel()
			s.stats.pings.Add(1)
			if err != nil {
				return fmt.Errorf("listener ping: %w", err)
			}
			for {
				n, _ := conn.WaitForNotification(doneContext) // only those already received
				if n == nil {
					break
				}
				s.apply(n.Payload)
			}
			s.renewLease(sent)
		default:
			return err
		}
	}
}

// closeTimeout bounds closing the listener's connection, which may be hung.
const closeTimeout = time.Second

// doneContext is a context that has already ended.
var doneContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// renewLease lets the memory tier serve until Lease after proof (real clock): the moment a
// ping was sent whose answer came back, or a notification arrived, on a connection that
// delivers in order.
func (s *Store) renewLease(proof time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end := proof.Add(s.cfg.Lease); end.After(s.leaseEnd) {
		s.leaseEnd = end
	}
	if s.leaseOK || s.closed {
		return // the timer is set; it looks at leaseEnd when it fires
	}
	d := time.Until(s.leaseEnd)
	if d <= 0 {
		return
	}
	s.leaseOK = true
	if s.leaseTimer == nil {
		s.leaseTimer = time.AfterFunc(d, s.checkLease)
	} else {
		s.leaseTimer.Reset(d)
	}
}

// checkLease runs when the lease may have run out: it ends it, or waits for its new end.
func (s *Store) checkLease() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := time.Until(s.leaseEnd); d > 0 && !s.closed {
		s.leaseTimer.Reset(d)
		return
	}
	s.leaseOK = false
}

// setCoherent turns the memory tier on or off. Either way the memory tier is flushed and every
// read in flight loses its right to fill: while off, changes may be missed; on the way back
// on, reads that began while off may hold values older than the first notification.
func (s *Store) setCoherent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.coherent == on && on {
		return
	}
	if s.coherent && !on {
		s.stats.flushes.Add(1)
	}
	s.coherent = on
	s.flushLocked()
}

// change is a parsed notification from the sessions_notify trigger (migrations/0001).
type change struct {
	op     byte // 'd' deleted, 'u' upserted, 'r' everything deleted
	key    string
	e      int64
	digest [sha256.Size]byte
}

// parseChange parses "d <k>", "u <k> <e> <hex sha256>" or "r".
func parseChange(payload string) (change, error) {
	f := strings.Split(payload, " ")
	switch {
	case len(f) == 1 && f[0] == "r":
		return change{op: 'r'}, nil
	case len(f) == 2 && f[0] == "d" && f[1] != "":
		return change{op: 'd', key: f[1]}, nil
	case len(f) == 4 && f[0] == "u" && f[1] != "":
		e, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || e < 0 {
			break
		}
		c := change{op: 'u', key: f[1], e: e}
		if len(f[3]) != hex.EncodedLen(sha256.Size) {
			break
		}
		if _, err := hex.Decode(c.digest[:], []byte(f[3])); err != nil {
			break
		}
		return c, nil
	}
	return change{}, fmt.Errorf("storage: unknown notification %q", payload)
}

// apply drops whatever a notification makes stale. A payload it cannot parse flushes the whole
// memory tier: when in doubt, serve from Postgres.
func (s *Store) apply(payload string) {
	c, err := parseChange(payload)
	s.stats.invalidations.Add(1)
	defer s.callHook("notified", c.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || c.op == 'r' {
		s.stats.flushes.Add(1)
		s.flushLocked()
		return
	}
	if c.op == 'd' {
		s.invalidateLocked(c.key)
		return
	}
	row := rowState{digest: c.digest, e: c.e}
	if f := s.flights[c.key]; f != nil {
		s.announceLocked(f, row)
	}
	// A copy of exactly this row, expiring no later than it, stays; the key is dead no more.
	if s.mem == nil {
		return
	}
	s.mem.dead.remove(c.key)
	if n, ok := s.mem.lookup(c.key); ok && !(n.digest == c.digest && covers(c.e, n.rowExpiry)) {
		s.mem.remove(c.key)
	}
}
