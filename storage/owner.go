package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A row's owner comes from Config.Owner, written with the value by Set; these are the
// statements that use it.

// Bound is a live row filed under an owner, as Owned returns it.
type Bound struct {
	// Handle names the row to its owner for DeleteHandle: random, given to the row when it is
	// first written and kept for its life; neither its key nor the key's hash.
	Handle  string
	Value   []byte    // the stored value
	Expires time.Time // the row's expiry; the zero Time for none
	Current bool      // the row is the one of the key passed to Owned
}

// Owned returns the rows filed under owner that have not expired, in no particular order, in
// one query. The row of key, if it is one of them, is marked Current. Memory is not consulted:
// the rows come from Postgres.
func (s *Store) Owned(ctx context.Context, owner, key string) ([]Bound, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if s.pool == nil {
		return nil, errors.New("storage: owned: no database")
	}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT handle, v, e, k = $2 FROM "+Table+
		" WHERE owner = $1 AND (e = 0 OR e > $3)", owner, hashKey(key), s.cfg.Now().Unix())
	if err != nil {
		return nil, fmt.Errorf("storage: owned: %w", err)
	}
	var out []Bound
	for rows.Next() {
		var (
			b Bound
			e int64
		)
		if err := rows.Scan(&b.Handle, &b.Value, &e, &b.Current); err != nil {
			rows.Close()
			return nil, fmt.Errorf("storage: owned: %w", err)
		}
		b.Expires = unixTime(e)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: owned: %w", err)
	}
	return out, nil
}

// DeleteHandle deletes the row filed under owner whose Bound.Handle is handle, if it has not
// expired, on this instance at once and on every other instance through their listeners, in
// one statement. It reports whether it deleted a row, and whether that row was key's. A handle
// of another owner's row, an expired row's or one that does not exist deletes nothing.
func (s *Store) DeleteHandle(ctx context.Context, owner, handle, key string) (deleted, wasKey bool, err error) {
	if s.isClosed() {
		return false, false, ErrClosed
	}
	if s.pool == nil {
		return false, false, errors.New("storage: delete handle: no database")
	}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	var h string
	err = s.pool.QueryRow(ctx, "DELETE FROM "+Table+" WHERE owner = $1 AND handle = $2 AND (e = 0 OR e > $3)"+
		tombstoneRule(s.cfg.Tombstones)+" RETURNING k", owner, handle, s.cfg.Now().Unix()).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("storage: delete handle: %w", err)
	}
	s.mu.Lock()
	s.invalidateLocked(h)
	s.mu.Unlock()
	s.stats.deletes.Add(1)
	return true, h == hashKey(key), nil
}

// DeleteOwner deletes every key filed under owner, on this instance at once and on every other
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
	keys, err := deleteOwner(ctx, s.pool, owner, s.cfg.Tombstones)
	s.mu.Lock()
	for _, h := range keys {
		s.invalidateLocked(h)
	}
	s.mu.Unlock()
	s.stats.deletes.Add(uint64(len(keys)))
	return len(keys), err
}

// DeleteOwner deletes every session filed under owner in the database behind db, leaving
// tombstones. Running stores drop their copies when notified. It is for tools that run without
// a Store, such as a password change from the command line.
func DeleteOwner(ctx context.Context, db *pgxpool.Pool, owner string) (int, error) {
	keys, err := deleteOwner(ctx, db, owner, true)
	return len(keys), err
}

func deleteOwner(ctx context.Context, db *pgxpool.Pool, owner string, tombstones bool) ([]string, error) {
	rows, err := db.Query(ctx, "DELETE FROM "+Table+" WHERE owner = $1"+tombstoneRule(tombstones)+" RETURNING k", owner)
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
