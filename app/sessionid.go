package app

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"hash"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// sessionIDs mints session ids and recognises forged ones without a lookup. An id is 26 random
// base32 characters (130 bits, crypto/rand.Text) followed by 26 more that encode the first 128
// bits of HMAC-SHA256 of the random part under the server's key. Only a holder of the key can
// make an id that valid accepts, so a cookie that did not come from a server of this
// deployment (wrong length or alphabet, a random id, an altered one) is refused before the
// session store sees it: a spray of made-up cookies costs no query. The key signs nothing
// else; the store still keeps only the SHA-256 of each id.
type sessionIDs struct {
	key  []byte
	macs *sync.Pool // of hmac.New(sha256.New, key): a MAC per request without allocating one
}

// newSessionIDs returns the sessionIDs that sign with key.
func newSessionIDs(key []byte) sessionIDs {
	return sessionIDs{key: key, macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

const (
	idRandLen = 26 // len(rand.Text())
	idMACLen  = 26 // 16 bytes in unpadded base32
	idLen     = idRandLen + idMACLen
	keyLen    = 32
)

var macEncoding = base32.StdEncoding.WithPadding(base32.NoPadding) // rand.Text's alphabet

// New returns a new session id. It is Fiber's session KeyGenerator.
func (s sessionIDs) New() string {
	r := rand.Text()
	return r + s.mac(r)
}

// Valid reports whether id is one that New could have returned under this key. It looks at
// nothing but id, and compares the MAC in constant time.
func (s sessionIDs) Valid(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return hmac.Equal([]byte(id[idRandLen:]), []byte(s.mac(id[:idRandLen])))
}

func (s sessionIDs) mac(random string) string {
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(random))
	var sum [sha256.Size]byte
	out := macEncoding.EncodeToString(m.Sum(sum[:0])[:16])
	s.macs.Put(m)
	return out
}

// loadSessionIDs returns the sessionIDs of the deployment whose database is db: it reads the
// key from the session_key table (migrations/0004), after creating it there if this is the
// first server to start.
func loadSessionIDs(ctx context.Context, db *pgxpool.Pool) (sessionIDs, error) {
	fresh := make([]byte, keyLen)
	_, _ = rand.Read(fresh) // never fails (crypto/rand)
	// When servers start together, the first insert wins; the others wait for it to commit,
	// do nothing, and read its key (each statement sees what was committed before it began).
	if _, err := db.Exec(ctx, "INSERT INTO session_key (key) VALUES ($1) ON CONFLICT (id) DO NOTHING", fresh); err != nil {
		return sessionIDs{}, fmt.Errorf("store the session key: %w", err)
	}
	var key []byte
	if err := db.QueryRow(ctx, "SELECT key FROM session_key").Scan(&key); err != nil {
		return sessionIDs{}, fmt.Errorf("read the session key: %w", err)
	}
	return newSessionIDs(key), nil
}
