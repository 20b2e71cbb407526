// Package migrations holds the database schema as golang-migrate SQL files, embedded in the
// binary, and applies them.
//
// Add a change as a pair NNNN_name.up.sql / NNNN_name.down.sql with the next number; never edit
// a file that has been released.
package migrations

import (
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

//go:embed *.sql
var files embed.FS

// Migrator applies the embedded migrations to one database. It holds one connection of the
// pool while it is open; Close releases it and never closes the pool.
type Migrator struct {
	m  *migrate.Migrate
	db *sql.DB
}

// New returns a Migrator for the database behind pool.
func New(pool *pgxpool.Pool) (*Migrator, error) {
	src, err := iofs.New(files, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations: read embedded files: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return &Migrator{m: m, db: db}, nil
}

// Up applies every pending migration. Having nothing to apply is not an error.
func (g *Migrator) Up() error {
	if err := g.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrations: up: %w", err)
	}
	return nil
}

// Down reverts the most recent migration. Having nothing to revert is not an error.
func (g *Migrator) Down() error {
	if err := g.m.Steps(-1); err != nil && !errors.Is(err, migrate.ErrNoChange) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("migrations: down: %w", err)
	}
	return nil
}

// Version reports the version applied last (0 when none is) and whether a migration failed
// half-way and left the database dirty.
func (g *Migrator) Version() (version uint, dirty bool, err error) {
	version, dirty, err = g.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("migrations: version: %w", err)
	}
	return version, dirty, nil
}

// Close releases the connection the Migrator holds. The pool stays open.
func (g *Migrator) Close() error {
	// Closing the driver closes db; with OpenDBFromPool that does not close the pool.
	srcErr, dbErr := g.m.Close()
	return errors.Join(srcErr, dbErr)
}

// Latest returns the version of the newest embedded migration: the version Up leaves a database
// at.
func Latest() (uint, error) {
	src, err := iofs.New(files, ".")
	if err != nil {
		return 0, fmt.Errorf("migrations: read embedded files: %w", err)
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return 0, fmt.Errorf("migrations: no migration files: %w", err)
	}
	for {
		next, err := src.Next(v)
		if errors.Is(err, fs.ErrNotExist) {
			return v, nil
		}
		if err != nil {
			return 0, fmt.Errorf("migrations: %w", err)
		}
		v = next
	}
}

// Up applies every pending migration to the database behind pool.
func Up(pool *pgxpool.Pool) error {
	g, err := New(pool)
	if err != nil {
		return err
	}
	defer g.Close()
	return g.Up()
}
