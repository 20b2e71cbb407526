package pgtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Counter is a pgx tracer that records every statement a pool sends (queries, batched queries
// and COPY), to prove that a code path sends none. Install it with Install or PoolWithCounter.
// It is safe for concurrent use.
type Counter struct {
	mu  sync.Mutex
	sql []string
}

var (
	_ pgx.QueryTracer    = (*Counter)(nil)
	_ pgx.BatchTracer    = (*Counter)(nil)
	_ pgx.CopyFromTracer = (*Counter)(nil)
)

// Install makes every connection of a pool built from cfg report to c.
func (c *Counter) Install(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = c }

// Mark returns a position for Since.
func (c *Counter) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sql)
}

// Since returns how many statements were sent after mark, and which.
func (c *Counter) Since(mark int) (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sql) - mark, append([]string(nil), c.sql[mark:]...)
}

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
	_, all := c.Since(0)
	return all
}

func (c *Counter) record(sql string) {
	c.mu.Lock()
	c.sql = append(c.sql, sql)
	c.mu.Unlock()
}

// TraceQueryStart records a statement.
func (c *Counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.record(d.SQL)
	return ctx
}

// TraceQueryEnd does nothing.
func (c *Counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart does nothing; each query of the batch is recorded by TraceBatchQuery.
func (c *Counter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

// TraceBatchQuery records a statement of a batch.
func (c *Counter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.record(d.SQL)
}

// TraceBatchEnd does nothing.
func (c *Counter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart records a COPY.
func (c *Counter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	c.record(fmt.Sprintf("COPY %v", d.TableName))
	return ctx
}

// TraceCopyFromEnd does nothing.
func (c *Counter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// PoolWithCounter opens a pool on dbURL whose statements c records, closed when the test ends.
func PoolWithCounter(t testing.TB, dbURL string, c *Counter) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c.Install(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
