// Package keys keeps the deployment's session-signing key in the session_key table: the
// zero-configuration default, for deployments that supply no keys of their own (SESSION_KEYS).
package keys

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Len is the length of a key this package makes, in bytes.
const Len = 32

// Store reads and writes the session_key table. It is safe for concurrent use.
type Store struct {
	DB      *pgxpool.Pool
	Timeout time.Duration // deadline of each statement
}

// Load returns the deployment's key, after storing a new random one if there is none yet. When
// servers start together, the first insert wins; the others wait for it to commit, do nothing,
// and read its key, so every instance gets the same key.
func (s Store) Load(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	fresh := make([]byte, Len)
	_, _ = rand.Read(fresh) // never fails (crypto/rand)
	if _, err := s.DB.Exec(ctx, "INSERT INTO session_key (key) VALUES ($1) ON CONFLICT (id) DO NOTHING", fresh); err != nil {
		return nil, fmt.Errorf("store the session key: %w", err)
	}
	var key []byte
	if err := s.DB.QueryRow(ctx, "SELECT key FROM session_key").Scan(&key); err != nil {
		return nil, fmt.Errorf("read the session key: %w", err)
	}
	return key, nil
}
