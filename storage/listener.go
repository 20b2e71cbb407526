package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ListenerApplicationName is the application_name of the listening connection.
const ListenerApplicationName = "sessions-listener"

// ErrNotHeard is returned by New when a notification sent through the pool does not reach the
// listener within QueryTimeout: its connection reaches another database than the pool's (a
// listen URL naming another database or server), or the pool goes through a pooler that drops
// LISTEN. Such a listener would hear no change made through the pool.
var ErrNotHeard = errors.New("storage: a notification sent through the pool did not reach the listener")

// listener keeps one dedicated connection LISTENing on Channel and applies every notification
// to its Store. Notifications sent while it is not listening are lost, so whenever it is not
// listening the Store's memory tier is flushed and stays off.
//
// Proof: after each LISTEN (at start and after every reconnect) it sends a probe notification
// with a payload of its own through the pool and waits for it on its connection, for
// QueryTimeout. Memory serves only once the probe arrived: a listener on another database than
// the pool's fails New with ErrNotHeard at start, and keeps memory off after a reconnect.
//
// Lease: memory serves only until Lease after the start of the last round trip it timed and saw
// answered: the probe, then a ping every HealthInterval whatever the traffic. A ping sent at t
// renews the lease to t + Lease once its answer came back and every notification that arrived
// before the answer has been applied; Postgres sends a listener every notification committed
// before the ping reached it ahead of the ping's answer. So a change committed at c has been
// applied, or memory stopped serving, by c + Lease, whatever the connection's delay; a
// notification renews nothing, since its arrival says nothing of when it was sent.
//
// Every change of its state is one log line (Config.Logger); retries within a state log none.
type listener struct {
	s    *Store
	conf *pgx.ConnConfig
	log  *slog.Logger

	// stateMu serializes changes of state and their log lines. It is taken before Store.mu.
	stateMu sync.Mutex
	state   listenerState // what the log last said
}

// listenerState is the listener's state as its log lines tell it.
type listenerState int

const (
	stateStarting     listenerState = iota // before the first LISTEN was proven: nothing logged
	stateServing                           // listening, proven, lease valid: memory serves
	stateLeaseExpired                      // listening, but no ping came back within Lease
	stateLost                              // the connection that served failed
	stateReconnecting                      // attempts to listen again fail
	stateNotHeard                          // listening, but the probe did not arrive
)

func (st listenerState) String() string {
	return [...]string{"starting", "serving", "lease_expired", "lost", "reconnecting", "not_heard"}[st]
}

// message is the log line of entering st, from a state that was serving or not.
func (st listenerState) message(first bool) string {
	switch st {
	case stateServing:
		if first {
			return "session listener: listening, memory serves"
		}
		return "session listener: memory serves again"
	case stateLeaseExpired:
		return "session listener: lease expired, serving from PostgreSQL only"
	case stateLost:
		return "session listener: connection lost, serving from PostgreSQL only"
	case stateReconnecting:
		return "session listener: reconnecting, serving from PostgreSQL only"
	case stateNotHeard:
		return "session listener: hears no notifications, serving from PostgreSQL only"
	}
	return "session listener: " + st.String()
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
	log := s.cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &listener{s: s, conf: conf, log: log}, nil
}

// run listens until the Store closes, reconnecting with a backoff between ReconnectMin and
// ReconnectMax. It sends on ready once: nil when it first listens with its probe heard, or the
// error of its first attempt, after which it returns.
func (l *listener) run(ready chan<- error) {
	s := l.s
	first := true
	backoff := s.cfg.ReconnectMin
	for {
		proven, err := l.listen(func() {
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
		switch {
		case proven:
			l.enter(stateLost, err.Error())
		case errors.Is(err, ErrNotHeard):
			l.enter(stateNotHeard, err.Error())
		default:
			l.enter(stateReconnecting, err.Error())
		}
		s.callHook("listener:failed", "")
		select {
		case <-s.life.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.ReconnectMax)
	}
}

// listen connects, LISTENs, proves with a probe that it hears what is sent through the pool,
// turns the memory tier on and calls proven, then applies notifications and pings every
// HealthInterval until the connection fails or the Store closes. It reports whether it got
// as far as proven.
func (l *listener) listen(proven func()) (bool, error) {
	s := l.s
	ctx, cancel := s.callContext(context.Background())
	conn, err := pgx.ConnectConfig(ctx, l.conf)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connect to %s: %w", l.conf.Host, err)
	}
	defer func() {
		// The connection may be hung: Close must not wait on it for long.
		ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.QueryTimeout, closeTimeout))
		_ = conn.Close(ctx)
		cancel()
	}()
	ctx, cancel = s.callContext(context.Background())
	_, err = conn.Exec(ctx, "LISTEN "+Channel)
	cancel()
	if err != nil {
		return false, fmt.Errorf("listen on %s: %w", l.conf.Host, err)
	}
	s.callHook("listener:listening", "")
	sent, err := l.probe(conn)
	if err != nil {
		return false, err
	}
	s.setCoherent(true)
	l.renew(sent, "listening; a probe notification sent through the pool arrived")
	proven()

	next := sent.Add(s.cfg.HealthInterval)
	for {
		wctx, cancel := context.WithDeadline(s.life, next)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case s.life.Err() != nil:
			return true, s.life.Err()
		case err == nil:
			s.apply(n.Payload)
			continue
		case !pgconn.Timeout(err):
			return true, err
		}
		// Time to ping. Its answer proves that every notification committed before it reached
		// Postgres has arrived; apply those before renewing.
		sent := time.Now()
		next = sent.Add(s.cfg.HealthInterval)
		pctx, cancel := s.callContext(context.Background())
		err = conn.Ping(pctx)
		cancel()
		s.stats.pings.Add(1)
		if err != nil {
			return true, fmt.Errorf("ping: %w", err)
		}
		for {
			n, _ := conn.WaitForNotification(doneContext) // only those already received
			if n == nil {
				break
			}
			s.apply(n.Payload)
		}
		l.renew(sent, "a ping came back within the lease")
	}
}

// probe sends a notification with a payload of its own through the pool and waits, for
// QueryTimeout, until it arrives on conn, applying every notification that arrives before it.
// It returns when the probe was sent: every change committed before then has been applied.
func (l *listener) probe(conn *pgx.Conn) (time.Time, error) {
	s := l.s
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	payload := "p " + hex.EncodeToString(nonce[:])
	ctx, cancel := s.callContext(context.Background())
	defer cancel()
	sent := time.Now()
	if _, err := s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, payload); err != nil {
		return time.Time{}, fmt.Errorf("send a probe notification through the pool: %w", err)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		switch {
		case err == nil && n.Payload == payload:
			return sent, nil
		case err == nil:
			s.apply(n.Payload)
		case pgconn.Timeout(err) && s.life.Err() == nil:
			return time.Time{}, fmt.Errorf("%w within %v (listener on %s, database %s)", ErrNotHeard, s.cfg.QueryTimeout, l.conf.Host, l.conf.Database)
		default:
			return time.Time{}, fmt.Errorf("wait for the probe notification: %w", err)
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

// enter moves to state st and logs it, with reason, if that is a change. A lease that expires
// while the connection is already lost or not proven changes nothing.
func (l *listener) enter(st listenerState, reason string) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	l.enterLocked(st, reason)
}

func (l *listener) enterLocked(st listenerState, reason string) {
	if st == l.state || l.s.life.Err() != nil {
		return
	}
	first := l.state == stateStarting
	l.state = st
	level := slog.LevelWarn
	attrs := []slog.Attr{slog.String("state", st.String()), slog.String("reason", reason)}
	switch st {
	case stateServing:
		level = slog.LevelInfo
		attrs = append(attrs, slog.String("host", l.conf.Host), slog.Duration("lease", l.s.cfg.Lease))
	case stateReconnecting:
		attrs = append(attrs, slog.Duration("retry_max", l.s.cfg.ReconnectMax))
	}
	l.log.LogAttrs(context.Background(), level, st.message(first), attrs...)
}

// renew renews the lease to proof + Lease, proof being when a round trip that came back
// started, and logs the memory tier serving (again) or not.
func (l *listener) renew(proof time.Time, reason string) {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.s.renewLease(proof, l.checkLease) {
		l.enterLocked(stateServing, reason)
	} else {
		l.enterLocked(stateLeaseExpired, fmt.Sprintf("a round trip to PostgreSQL took longer than the lease (%v)", l.s.cfg.Lease))
	}
}

// checkLease runs when the lease may have run out: it ends it, or waits for its new end.
func (l *listener) checkLease() {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	if l.s.checkLease() && l.state == stateServing {
		l.enterLocked(stateLeaseExpired, fmt.Sprintf("no ping came back within the lease (%v)", l.s.cfg.Lease))
	}
}

// renewLease lets the memory tier serve until Lease after proof (real clock), with check to run
// when that may have passed, and reports whether the memory tier serves now.
func (s *Store) renewLease(proof time.Time, check func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end := proof.Add(s.cfg.Lease); end.After(s.leaseEnd) {
		s.leaseEnd = end
	}
	if s.closed {
		return false
	}
	if !s.leaseOK {
		d := time.Until(s.leaseEnd)
		if d <= 0 {
			return false
		}
		s.leaseOK = true
		if s.leaseTimer == nil {
			s.leaseTimer = time.AfterFunc(d, check)
		} else {
			s.leaseTimer.Reset(d)
		}
	}
	// Otherwise the timer is set; it looks at leaseEnd when it fires.
	return s.servingLocked()
}

// checkLease ends the lease if it has run out, or sets the timer for its new end, and reports
// whether it ended it.
func (s *Store) checkLease() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if d := time.Until(s.leaseEnd); d > 0 {
		s.leaseTimer.Reset(d)
		return false
	}
	s.leaseOK = false
	return true
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

// change is a parsed notification from the sessions_notify trigger (migrations/0001), or a
// listener's probe.
type change struct {
	op     byte // 'd' deleted, 'u' upserted, 'r' everything deleted, 'p' a probe (no change)
	key    string
	e      int64
	digest [sha256.Size]byte
}

// parseChange parses "d <k>", "u <k> <e> <hex sha256>", "r" or "p <nonce>".
func parseChange(payload string) (change, error) {
	f := strings.Split(payload, " ")
	switch {
	case len(f) == 1 && f[0] == "r":
		return change{op: 'r'}, nil
	case len(f) == 2 && f[0] == "d" && f[1] != "":
		return change{op: 'd', key: f[1]}, nil
	case len(f) == 2 && f[0] == "p" && f[1] != "":
		return change{op: 'p'}, nil
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
	if err == nil && c.op == 'p' {
		return // a probe, this instance's late one or another instance's: nothing changed
	}
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
