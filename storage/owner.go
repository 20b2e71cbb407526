package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Bind records owner as the owner of key's row, so that DeleteOwner can end it with the
// owner's other sessions. It returns an error wrapping ErrDeleted when no row for key exists.
func (s *Store) Bind(ctx context.Context, key, owner string) error {
	if s.isClosed() {
		return ErrClosed
	}
	if s.pool == nil {
		return errors.New("storage: bind: no database")
	}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, "UPDATE "+Table+" SET owner = $2 WHERE k = $1", hashKey(key), owner)
	if err != nil {
		return fmt.Errorf("storage: bind: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("storage: bind: %w", ErrDeleted)
	}
	return nil
}

// DeleteOwner deletes every key bound to owner, on this instance at once and on every other
// instance through their listeners, and returns how many it deleted.
func (s *Store) DeleteOwner(ctx context.Context, owner string) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	if s.pool == nil {
		return 0, errors.New("storage: delete owner: no database")
	}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	keys, err := deleteOwner(ctx, s.pool, owner)
	s.mu.Lock()
	for _, h := range keys {
		s.invalidateLocked(h)
	}
	s.mu.Unlock()
	s.stats.deletes.Add(uint64(len(keys)))
	return len(keys), err
}

// DeleteOwner deletes every session bound to owner in the database behind db. Running stores
// drop their copies when notified. It is for tools that run without a Store, such as a
// password change from the command line.
func DeleteOwner(ctx context.Context, db *pgxpool.Pool, owner string) (int, error) {
	keys, err := deleteOwner(ctx, db, owner)
	return len(keys), err
}

func deleteOwner(ctx context.Context, db *pgxpool.Pool, owner string) ([]string, error) {
	rows, err := db.Query(ctx, "DELETE FROM "+Table+" WHERE owner = $1 RETURNING k", owner)
	if err != nil {
		return nil, fmt.Errorf("storage: delete owner: %w", err)
	}
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return keys, fmt.Errorf("storage: delete owner: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return keys, fmt.Errorf("storage: delete owner: %w", err)
	}
	return keys, nil
}
