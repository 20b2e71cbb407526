package pgtest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Counter is a pgx tracer that counts the statements a pool sends, to prove that a code path
// sends none. Install it with PoolWithCounter.
type Counter struct {
	mu  sync.Mutex
	sql []string
}

// TraceQueryStart records one statement.
func (c *Counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	c.sql = append(c.sql, data.SQL)
	c.mu.Unlock()
	return ctx
}

// TraceQueryEnd does nothing.
func (c *Counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Count returns how many statements were sent so far, and how many of them contain substr.
func (c *Counter) Count(substr string) (all, matching int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sql {
		if strings.Contains(s, substr) {
			matching++
		}
	}
	return len(c.sql), matching
}

// Statements returns a copy of every statement sent so far.
func (c *Counter) Statements() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.sql...)
}

// PoolWithCounter opens a pool on dbURL whose statements c counts, closed when the test ends.
func PoolWithCounter(t testing.TB, dbURL string, c *Counter) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.ConnConfig.Tracer = c
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
