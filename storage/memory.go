package storage

import (
	"container/list"
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
//
// Beside the values, memTier keeps the dead set (nil when off): keys known to have no live row.
// A key is never both: filling a value drops its dead entry, and every removal drops both.
type memTier struct {
	db    *memory.Storage
	cap   int
	index map[string]*node // by hashed key
	byKey map[string]*node // by the caller's key
	head  node             // sentinel: head.next is the most recently used, head.prev the least
	dead  *deadSet
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

// newMemTier returns a memory tier of capacity values and, if deadCapacity > 0, a dead set of
// that many keys.
func newMemTier(capacity, deadCapacity int) *memTier {
	m := &memTier{
		// memory/v2's own sweep only removes entries with an expiry, and we set none; a long
		// interval keeps its goroutine idle.
		db:    memory.New(memory.Config{GCInterval: time.Hour}),
		cap:   capacity,
		index: make(map[string]*node, capacity),
		byKey: make(map[string]*node, capacity),
	}
	m.head.next, m.head.prev = &m.head, &m.head
	if deadCapacity > 0 {
		m.dead = newDeadSet(deadCapacity)
	}
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
	m.dead.remove(key)
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

// remove drops hashed key, its value or its dead entry, and reports whether a value was present.
func (m *memTier) remove(key string) bool {
	m.dead.remove(key)
	return m.removeValue(key)
}

// removeValue drops the value of hashed key and reports whether it was present.
func (m *memTier) removeValue(key string) bool {
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

// sweep removes every entry expired at now, dead entries too, and returns how many values it
// removed.
func (m *memTier) sweep(now time.Time) int {
	m.dead.sweep(now)
	removed := 0
	for key, n := range m.index {
		if !now.Before(n.deadline) {
			m.remove(key)
			removed++
		}
	}
	return removed
}

// clear drops every entry, dead entries too.
func (m *memTier) clear() {
	m.dead.clear()
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

// deadSet is an LRU of at most cap keys known to have no live row, each forgotten at its
// deadline. Its methods do nothing on a nil *deadSet (the dead set is off).
type deadSet struct {
	cap    int
	order  *list.List               // of *deadEntry; front: the most recently asked for
	byHash map[string]*list.Element // by hashed key
	byKey  map[string]*list.Element // by the caller's key
}

type deadEntry struct {
	key, rawKey string // hashed, and as the caller gave it
	deadline    time.Time
}

func newDeadSet(capacity int) *deadSet {
	return &deadSet{cap: capacity, order: list.New(), byHash: map[string]*list.Element{}, byKey: map[string]*list.Element{}}
}

// has reports whether the caller's key is dead at now, and marks it most recently asked for. An
// entry past its deadline is removed.
func (d *deadSet) has(rawKey string, now time.Time) bool {
	if d == nil {
		return false
	}
	el, ok := d.byKey[rawKey]
	if !ok {
		return false
	}
	if !now.Before(el.Value.(*deadEntry).deadline) {
		d.removeElement(el)
		return false
	}
	d.order.MoveToFront(el)
	return true
}

// put remembers the caller's key rawKey, hashed key, as dead until deadline, forgetting the
// least recently asked for key when full.
func (d *deadSet) put(rawKey, key string, deadline time.Time) {
	if d == nil {
		return
	}
	if el, ok := d.byHash[key]; ok {
		el.Value.(*deadEntry).deadline = deadline
		d.order.MoveToFront(el)
		return
	}
	for d.order.Len() >= d.cap {
		d.removeElement(d.order.Back())
	}
	e := &deadEntry{key: key, rawKey: strings.Clone(rawKey), deadline: deadline}
	el := d.order.PushFront(e)
	d.byHash[key] = el
	d.byKey[e.rawKey] = el
}

// remove forgets hashed key.
func (d *deadSet) remove(key string) {
	if d == nil {
		return
	}
	if el, ok := d.byHash[key]; ok {
		d.removeElement(el)
	}
}

func (d *deadSet) removeElement(el *list.Element) {
	e := d.order.Remove(el).(*deadEntry)
	delete(d.byHash, e.key)
	delete(d.byKey, e.rawKey)
}

// sweep forgets every key past its deadline at now.
func (d *deadSet) sweep(now time.Time) {
	if d == nil {
		return
	}
	for el := d.order.Front(); el != nil; {
		next := el.Next()
		if !now.Before(el.Value.(*deadEntry).deadline) {
			d.removeElement(el)
		}
		el = next
	}
}

func (d *deadSet) clear() {
	if d == nil {
		return
	}
	d.order.Init()
	clear(d.byHash)
	clear(d.byKey)
}

func (d *deadSet) len() int {
	if d == nil {
		return 0
	}
	return d.order.Len()
}
