package app

import (
	"fmt"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// listenerNotHeard is the start-up error when the session store's listener does not hear a
// notification sent through the pool (storage.ErrNotHeard): one line naming the variable to fix,
// where each URL leads (never its password), and what to do.
func listenerNotHeard(cfg Config, db *pgxpool.Pool) error {
	pc := db.Config().ConnConfig
	pool := fmt.Sprintf("%s, database %s", net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port))), pc.Database)
	if cfg.Store.ListenURL == "" {
		return fmt.Errorf("the session listener does not hear notifications sent through DATABASE_URL (%s) within DB_QUERY_TIMEOUT (%v): if DATABASE_URL goes through a transaction-mode pooler (PgBouncer), set LISTEN_DATABASE_URL to a direct URL of the same database",
			pool, cfg.Store.QueryTimeout)
	}
	listen := "unparsable URL"
	if lc, err := pgx.ParseConfig(cfg.Store.ListenURL); err == nil {
		listen = fmt.Sprintf("%s, database %s", net.JoinHostPort(lc.Host, strconv.Itoa(int(lc.Port))), lc.Database)
	}
	return fmt.Errorf("LISTEN_DATABASE_URL (%s) does not hear notifications sent through DATABASE_URL (%s) within DB_QUERY_TIMEOUT (%v): point LISTEN_DATABASE_URL at the same database as DATABASE_URL, directly rather than through a pooler, or leave it empty",
		listen, pool, cfg.Store.QueryTimeout)
}
