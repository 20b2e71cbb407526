package storage

import (
	"crypto/sha256"
	"strings"
	"time"

	"github.com/gofiber/storage/memory/v2"
)

// memTier is the in-process tier: values live in a memory/v2 Storage, and memTier keeps the
// bookkeeping memory/v2 lacks (a capacity with least-recently-used eviction, expiry to the
// nanosecond, the row's expiry and a digest of the value for coherence checks). Entries are
// found by hashed key (the form notifications carry) and by the caller's key, so that a hit
// hashes nothing.
//
// memTier is not safe for concurrent use: the Store calls it with Store.mu held. Every change to
// the memory/v2 map goes through memTier, and memTier never hands memory/v2 an expiry (memory/v2
// would then drop entries on its own clock, in whole seconds, behind the index's back), so the
// index and the map hold exactly the same keys at all times.
type memTier struct {
	db    *memory.Storage
	cap   int
	index map[string]*node // by hashed key
	byKey map[string]*node // by the caller's key
	head  node             // sentinel: head.next is the most recently used, head.prev the least
}

type node struct {
	key       string    // hashed
	rawKey    string    // as the caller gave it
	deadline  time.Time // the entry is served strictly before this instant
	rowExpiry int64     // the Postgres row's expiry in unix seconds, 0 for none
	digest    [sha256.Size]byte
	// decoded is Config.Decode of the value, once a GetDecoded has computed it; nil until then
	// and again whenever the value changes.
	decoded    any
	prev, next *node
}

func newMemTier(capacity int) *memTier {
	m := &memTier{
		// memory/v2's own sweep only removes entries with an expiry, and we set none; a long
		// interval keeps its goroutine idle.
		db:    memory.New(memory.Config{GCInterval: time.Hour}),
		cap:   capacity,
		index: make(map[string]*node, capacity),
		byKey: make(map[string]*node, capacity),
	}
	m.head.next, m.head.prev = &m.head, &m.head
	return m
}

// get returns a copy of the value of the caller's key, with its row's expiry, if it is present
// and not expired at now, and marks it most recently used. An expired entry is removed.
func (m *memTier) get(rawKey string, now time.Time) (val []byte, rowExpiry int64, ok bool) {
	n, ok := m.touch(rawKey, now)
	if !ok {
		return nil, 0, false
	}
	val, _ = m.db.Get(n.key) // memory/v2 returns a copy
	if val == nil {
		// Cannot happen while the invariant holds; treat as a miss rather than serve nothing.
		m.remove(n.key)
		return nil, 0, false
	}
	return val, n.rowExpiry, true
}

// touch returns the bookkeeping of the caller's key if it is present and not expired at now,
// and marks it most recently used. An expired entry is removed. It allocates nothing.
func (m *memTier) touch(rawKey string, now time.Time) (*node, bool) {
	n, ok := m.byKey[rawKey]
	if !ok {
		return nil, false
	}
	if !now.Before(n.deadline) {
		m.remove(n.key)
		return nil, false
	}
	if m.head.next != n {
		m.unlink(n)
		m.pushFront(n)
	}
	return n, true
}

// put stores a copy of val under the caller's key rawKey, hashed key, until deadline and reports
// how many entries were evicted to make room for it.
func (m *memTier) put(rawKey, key string, val []byte, deadline time.Time, rowExpiry int64, digest [sha256.Size]byte, decoded any) (evicted int) {
	if n, ok := m.index[key]; ok {
		n.deadline, n.rowExpiry, n.digest, n.decoded = deadline, rowExpiry, digest, decoded
		m.unlink(n)
		m.pushFront(n)
		_ = m.db.Set(key, val, 0)
		return 0
	}
	for len(m.index) >= m.cap {
		m.remove(m.head.prev.key)
		evicted++
	}
	// The caller's key may live in a buffer Fiber reuses after the request: keep a copy.
	rawKey = strings.Clone(rawKey)
	n := &node{key: key, rawKey: rawKey, deadline: deadline, rowExpiry: rowExpiry, digest: digest, decoded: decoded}
	m.index[key] = n
	m.byKey[rawKey] = n
	m.pushFront(n)
	_ = m.db.Set(key, val, 0)
	return evicted
}

// lookup returns the bookkeeping of hashed key without touching its recency.
func (m *memTier) lookup(key string) (*node, bool) {
	n, ok := m.index[key]
	return n, ok
}

// remove drops hashed key and reports whether it was present.
func (m *memTier) remove(key string) bool {
	n, ok := m.index[key]
	if !ok {
		return false
	}
	m.unlink(n)
	delete(m.index, key)
	delete(m.byKey, n.rawKey)
	_ = m.db.Delete(key)
	return true
}

// sweep removes every entry expired at now and returns how many it removed.
func (m *memTier) sweep(now time.Time) int {
	removed := 0
	for key, n := range m.index {
		if !now.Before(n.deadline) {
			m.remove(key)
			removed++
		}
	}
	return removed
}

// clear drops every entry.
func (m *memTier) clear() {
	clear(m.index)
	clear(m.byKey)
	m.head.next, m.head.prev = &m.head, &m.head
	_ = m.db.Reset()
}

func (m *memTier) len() int { return len(m.index) }

// close stops memory/v2's goroutine.
func (m *memTier) close() { _ = m.db.Close() }

func (m *memTier) unlink(n *node) {
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev, n.next = nil, nil
}

func (m *memTier) pushFront(n *node) {
	n.prev = &m.head
	n.next = m.head.next
	m.head.next.prev = n
	m.head.next = n
}
