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
// is active again. A connection that dies without a reset is noticed by TCP keepalives within
// a few seconds, or by the ping after HealthInterval of silence.
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
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.QueryTimeout)
		_ = conn.Close(ctx)
		cancel()
	}()
	ctx, cancel = s.callContext(context.Background())
	_, err = conn.Exec(ctx, "LISTEN "+Channel)
	cancel()
	if err != nil {
		return fmt.Errorf("listen on %s: %w", l.conf.Host, err)
	}
	s.callHook("listener:listening", "")
	listening()

	for {
		wctx, cancel := context.WithTimeout(s.life, s.cfg.HealthInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case s.life.Err() != nil:
			return s.life.Err()
		case err == nil:
			s.apply(n.Payload)
		case pgconn.Timeout(err):
			// Silence: make sure the connection is still alive.
			pctx, cancel := s.callContext(context.Background())
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("listener ping: %w", err)
			}
		default:
			return err
		}
	}
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
	f := s.flights[c.key]
	if f != nil && f.writers == 1 && f.pending != nil &&
		f.pending.digest == c.digest && covers(c.e, f.pending.e) {
		return // this instance's own write, still in flight: its fill is the fresh copy
	}
	if f != nil {
		s.invalidateFlight(f)
		f.notified, f.notifiedGen = &rowState{digest: c.digest, e: c.e}, f.gen
	}
	if s.mem == nil {
		return
	}
	if n, ok := s.mem.lookup(c.key); ok && !(n.digest == c.digest && covers(c.e, n.rowExpiry)) {
		s.mem.remove(c.key)
	}
}

// covers reports whether a row expiring at rowE outlives a copy expiring at copyE (unix
// seconds, 0: never).
func covers(rowE, copyE int64) bool {
	return rowE == 0 || (copyE != 0 && copyE <= rowE)
}
