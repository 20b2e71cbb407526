package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	storedkeys "github.com/gofiber-template/sessions/storage/keys"
)

// sessionIDs mints session ids and recognises forged ones without a lookup. An id is 26 random
// base32 characters (130 bits, crypto/rand.Text) followed by 26 more that encode the first 128
// bits of HMAC-SHA256 of the random part under the server's signing key. Only a holder of a key
// can make an id that valid accepts, so a cookie that did not come from a server of this
// deployment (wrong length or alphabet, a random id, an altered one, one signed by a key since
// removed) is refused before the session store looks in the database: a spray of made-up
// cookies costs no query (at most the guard's one memory probe, see sessions.Guard). The keys
// sign nothing else; the store still keeps only the SHA-256 of each id.
//
// There may be several keys, for rotation: the first signs new ids, and an id signed by any of
// them is valid (Django's SECRET_KEY_FALLBACKS).
type sessionIDs struct {
	signers []signer // never empty
}

// signer is one key and its MACs.
type signer struct {
	key  []byte
	macs *sync.Pool // of *macState: a MAC per request without allocating one
}

// macState is one MAC under a signer's key and the buffers it reads from and writes to, kept
// together so that computing a MAC allocates nothing.
type macState struct {
	h   hash.Hash // hmac.New(sha256.New, key)
	in  [idRandLen]byte
	sum [sha256.Size]byte
	out [idMACLen]byte
}

// newSessionIDs returns the sessionIDs that sign with keys[0] and accept ids signed by any of
// keys. It panics without a key: callers pass one made here or validated by LoadConfig.
func newSessionIDs(keys ...[]byte) sessionIDs {
	if len(keys) == 0 {
		panic("app: newSessionIDs without a key")
	}
	s := sessionIDs{signers: make([]signer, len(keys))}
	for i, key := range keys {
		s.signers[i] = signer{key: key, macs: &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, key)} }}}
	}
	return s
}

// signingKey is the key new ids are signed with: the deployment's secret, which the login gate
// derives its own keys from.
func (s sessionIDs) signingKey() []byte { return s.signers[0].key }

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
	var mac [idMACLen]byte
	s.signers[0].mac(&mac, r)
	return r + string(mac[:])
}

// Valid reports whether id is one that New could have returned under any of the keys. It looks
// at nothing but id, compares the MAC with each key's in constant time, and allocates nothing.
func (s sessionIDs) Valid(id string) bool {
	if !wellFormed(id) {
		return false
	}
	var got, want [idMACLen]byte
	copy(got[:], id[idRandLen:])
	valid := false
	for _, k := range s.signers { // every key, whichever matches: the time tells nothing
		k.mac(&want, id[:idRandLen])
		valid = subtle.ConstantTimeCompare(got[:], want[:]) == 1 || valid
	}
	return valid
}

// wellFormed reports whether id has the length and alphabet of the ids New returns: what Valid
// checks before any MAC, at the cost of a loop over id.
func wellFormed(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// mac writes into out the MAC part of an id whose random part is random (idRandLen bytes).
func (s signer) mac(out *[idMACLen]byte, random string) {
	st := s.macs.Get().(*macState)
	st.h.Reset()
	copy(st.in[:], random)
	st.h.Write(st.in[:])
	macEncoding.Encode(st.out[:], st.h.Sum(st.sum[:0])[:16])
	*out = st.out
	s.macs.Put(st)
}

// loadSessionIDs returns the sessionIDs of keys when there are any (SESSION_KEYS), and touches
// no table. Without keys it returns those of the deployment whose database is db, the
// zero-configuration default: it reads the key from the session_key table (migrations/0004),
// after creating it there if this is the first server to start.
func loadSessionIDs(ctx context.Context, db *pgxpool.Pool, keys ...[]byte) (sessionIDs, error) {
	if len(keys) > 0 {
		return newSessionIDs(keys...), nil
	}
	key, err := storedkeys.Store{DB: db, Timeout: keyTimeout}.Load(ctx)
	if err != nil {
		return sessionIDs{}, err
	}
	return newSessionIDs(key), nil
}

// keyTimeout bounds the start-up statements that load the stored key.
const keyTimeout = 5 * time.Second

// sessionKeys are session-signing keys from outside (SESSION_KEYS, SESSION_KEYS_FILE), the
// first signing. They print, format and log as their number only.
type sessionKeys [][]byte

func (k sessionKeys) String() string       { return fmt.Sprintf("%d session keys", len(k)) }
func (k sessionKeys) GoString() string     { return k.String() }
func (k sessionKeys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// minKeyLen is the fewest bytes a session key from outside may have: HMAC-SHA256's block of
// security, as the keys this program makes itself.
const minKeyLen = keyLen

// readSessionKeys returns the keys of SESSION_KEYS (comma-separated) or of the file named by
// SESSION_KEYS_FILE (one a line; blank lines and lines starting with # are skipped), each the
// standard base64 of at least minKeyLen bytes, or none when neither is set. Its error names the
// variable and the key's place in the list, never a key.
func readSessionKeys(lookupEnv func(string) (string, bool)) (sessionKeys, error) {
	list, _ := lookupEnv("SESSION_KEYS")
	path, _ := lookupEnv("SESSION_KEYS_FILE")
	name, sep := "SESSION_KEYS", ","
	switch {
	case list != "" && path != "":
		return nil, errors.New("SESSION_KEYS and SESSION_KEYS_FILE are both set; set one")
	case path != "":
		b, err := os.ReadFile(path) //nolint:gosec // the operator names the file
		if err != nil {
			return nil, fmt.Errorf("SESSION_KEYS_FILE: %s", oneLine(err))
		}
		var lines []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		name, sep, list = "SESSION_KEYS_FILE", "\n", strings.Join(lines, "\n")
		if list == "" {
			return nil, fmt.Errorf("SESSION_KEYS_FILE: %s holds no key; write one base64 key a line (openssl rand -base64 32)", path)
		}
	case list == "":
		return nil, nil
	}
	parts := strings.Split(list, sep)
	keys := make(sessionKeys, 0, len(parts))
	for i, p := range parts {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(p))
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(strings.TrimSpace(p))
		}
		if err != nil || len(key) < minKeyLen {
			return nil, fmt.Errorf("%s: key %d of %d is not the base64 of %d bytes or more; make one with: openssl rand -base64 32", name, i+1, len(parts), minKeyLen)
		}
		keys = append(keys, key)
	}
	return keys, nil
}
