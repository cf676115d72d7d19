package db

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
)

// migrationFiles holds the versioned migrations, one directory per dialect
// (migrations/sqlite and migrations/postgres), as goose SQL files named
// NNNNN_what_it_does.sql. See docs/storage.md for how to add one.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// MigrationsTable is the table that records which migrations a database has,
// in goose's format (version_id, is_applied, tstamp).
const MigrationsTable = "parley_migrations"

// migrateLockKey is the PostgreSQL advisory lock that serialises the
// migrations of all Parley processes sharing a database ("parley" in ASCII).
const migrateLockKey int64 = 0x7061726c6579

// ErrSchemaTooNew is returned when the database has a migration newer than
// the newest one this binary knows: it was migrated by a newer Parley.
var ErrSchemaTooNew = errors.New("the database schema is newer than this Parley version knows")

// errAppliedMeanwhile aborts a SQLite migration that another process or
// Store applied after this one listed the pending migrations.
var errAppliedMeanwhile = errors.New("applied meanwhile by another process")

// SchemaVersion says where a database's schema stands.
type SchemaVersion struct {
	// Current is the newest migration the database has, 0 for none.
	Current int64
	// Latest is the newest migration this binary has.
	Latest int64
}

// Behind reports whether migrations are pending.
func (v SchemaVersion) Behind() bool { return v.Current < v.Latest }

// Ahead reports whether the database was migrated by a newer binary.
func (v SchemaVersion) Ahead() bool { return v.Current > v.Latest }

// Compatible returns nil unless the database is Ahead, and then
// ErrSchemaTooNew with both versions: a binary must not write to a schema
// it does not know.
func (v SchemaVersion) Compatible() error {
	if v.Ahead() {
		return fmt.Errorf("%w: it has migration %d, this binary's newest is %d; run a newer Parley", ErrSchemaTooNew, v.Current, v.Latest)
	}
	return nil
}

// Migration is one migration of this binary and its state in the database.
type Migration struct {
	Version int64
	// Name is the file name, such as 00001_initial_schema.sql.
	Name string
	// AppliedAt is when it was applied; zero while it is pending.
	AppliedAt time.Time
}

// Applied reports whether the database has the migration.
func (m Migration) Applied() bool { return !m.AppliedAt.IsZero() }

// MigrationResult is one migration that MigrateUp or MigrateDownTo ran.
type MigrationResult struct {
	Version  int64
	Name     string
	Duration time.Duration
}

// MigrateUp applies every pending migration, oldest first, each in a
// transaction of its own, and returns those it applied (none when the schema
// is current). It fails with ErrSchemaTooNew, changing nothing, when the
// database has a migration newer than this binary knows.
//
// MigrateUp is safe for concurrent use, also by several processes sharing
// the database: each migration is applied once. On PostgreSQL a session
// advisory lock makes the others wait; on SQLite every migration takes
// SQLite's write lock (BEGIN IMMEDIATE) and is recorded in the same
// transaction, and one that another process applied meanwhile is rolled back
// and skipped. On SQLite, foreign keys are not enforced while a migration
// runs (so that a table can be rebuilt without cascading deletes), and
// PRAGMA foreign_key_check must pass before each migration commits.
func (s *Store) MigrateUp(ctx context.Context) ([]MigrationResult, error) {
	var out []MigrationResult
	err := s.withMigrations(ctx, func(p *goose.Provider) error {
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		if err := v.Compatible(); err != nil {
			return err
		}
		for attempt := 0; ; attempt++ {
			res, err := p.Up(ctx)
			out = append(out, results(res)...)
			var partial *goose.PartialError
			if !errors.As(err, &partial) {
				return err
			}
			out = append(out, results(partial.Applied)...)
			// On SQLite, another process may have applied the migration
			// between goose's listing and its transaction: then this
			// attempt failed (or met errAppliedMeanwhile) and rolled back.
			if attempt >= len(p.ListSources()) {
				return err
			}
			applied, aerr := s.appliedMigrations(ctx)
			if aerr != nil {
				return errors.Join(err, aerr)
			}
			if _, ok := applied[partial.Failed.Source.Version]; !ok {
				return err
			}
		}
	})
	if len(out) > 0 {
		s.dropIdleConnections()
	}
	if err != nil {
		return out, fmt.Errorf("migrate %s %s up: %w", s.dialect, s.target, err)
	}
	return out, nil
}

// dropIdleConnections closes the idle connections of the Store's pools,
// after a migration changed the schema. A connection keeps what it knew of
// the schema: SQLite expands "SELECT *" with the columns the connection
// last read, and rebuilds the statement at its first step, with more
// columns than the driver announced ("bad parameter or other API
// misuse"); pgx's statements cached before the change fail once with
// "cached plan must not change result type". New connections read the
// schema afresh. Connections in use meanwhile keep theirs: MigrateUp runs
// before the Store serves.
func (s *Store) dropIdleConnections() {
	pools := []*sql.DB{s.sqlDB}
	if q := s.queueDB.Load(); q != nil {
		pools = append(pools, q)
	}
	for _, p := range pools {
		idle := p.Stats().MaxOpenConnections // every pool keeps all idle
		p.SetMaxIdleConns(0)                 // closes the idle connections
		p.SetMaxIdleConns(idle)
	}
}

// MigrateDownTo rolls back, newest first, every applied migration whose
// version is above version, and returns those it rolled back. Version 0
// rolls back every migration, which drops every table Parley created and the
// rows in them. It fails with ErrSchemaTooNew, changing nothing, when the
// database has a migration newer than this binary knows (only the binary
// that has a migration can roll it back). It is safe for concurrent use, like
// MigrateUp.
func (s *Store) MigrateDownTo(ctx context.Context, version int64) ([]MigrationResult, error) {
	if version < 0 {
		return nil, fmt.Errorf("migrate down to %d: want a version of 0 or more", version)
	}
	var out []MigrationResult
	err := s.withMigrations(ctx, func(p *goose.Provider) error {
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		if err := v.Compatible(); err != nil {
			return err
		}
		res, err := p.DownTo(ctx, version)
		out = results(res)
		var partial *goose.PartialError
		if errors.As(err, &partial) {
			out = append(out, results(partial.Applied)...)
		}
		return err
	})
	if len(out) > 0 {
		s.dropIdleConnections()
	}
	if err != nil {
		return out, fmt.Errorf("migrate %s %s down to %d: %w", s.dialect, s.target, version, err)
	}
	return out, nil
}

// SchemaVersion reads which migrations the database has, without changing
// anything. It is safe for concurrent use; readiness probes call it.
func (s *Store) SchemaVersion(ctx context.Context) (SchemaVersion, error) {
	v := SchemaVersion{Latest: s.latestMigration}
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return v, err
	}
	for version := range applied {
		v.Current = max(v.Current, version)
	}
	return v, nil
}

// MigrationStatus lists every migration of this binary with its state in
// the database, oldest first, without changing anything. It is safe for
// concurrent use.
func (s *Store) MigrationStatus(ctx context.Context) ([]Migration, error) {
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(s.migrations, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	out := make([]Migration, 0, len(names))
	for _, name := range names {
		version, err := goose.NumericComponent(name)
		if err != nil {
			return nil, fmt.Errorf("list migrations: %w", err)
		}
		out = append(out, Migration{Version: version, Name: name, AppliedAt: applied[version]})
	}
	slices.SortFunc(out, func(a, b Migration) int { return cmp.Compare(a.Version, b.Version) })
	return out, nil
}

// appliedMigrations maps the versions the database has to when each was
// applied. A database without the migrations table has none.
func (s *Store) appliedMigrations(ctx context.Context) (map[int64]time.Time, error) {
	exists := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '" + MigrationsTable + "'"
	if s.dialect == DialectPostgres {
		exists = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '" + MigrationsTable + "'"
	}
	var n int
	if err := s.sqlDB.QueryRowContext(ctx, exists).Scan(&n); err != nil {
		return nil, fmt.Errorf("read schema version of %s %s: %w", s.dialect, s.target, err)
	}
	applied := map[int64]time.Time{}
	if n == 0 {
		return applied, nil
	}
	rows, err := s.sqlDB.QueryContext(ctx, "SELECT version_id, tstamp FROM "+MigrationsTable+" WHERE version_id > 0 AND is_applied")
	if err != nil {
		return nil, fmt.Errorf("read schema version of %s %s: %w", s.dialect, s.target, err)
	}
	defer rows.Close()
	for rows.Next() {
		var version int64
		var at time.Time
		if err := rows.Scan(&version, &at); err != nil {
			return nil, fmt.Errorf("read schema version of %s %s: %w", s.dialect, s.target, err)
		}
		applied[version] = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema version of %s %s: %w", s.dialect, s.target, err)
	}
	return applied, nil
}

// migrationsOf returns the migration files of dialect.
func migrationsOf(dialect string) fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations/"+dialect)
	if err != nil {
		// fs.Sub fails only on an invalid path, and dialect is one of ours.
		panic(err)
	}
	return sub
}

// setMigrations makes fsys the Store's migration files.
func (s *Store) setMigrations(fsys fs.FS) error {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return fmt.Errorf("list migrations: %w", err)
	}
	s.migrations, s.latestMigration = fsys, 0
	for _, name := range names {
		version, err := goose.NumericComponent(name)
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		s.latestMigration = max(s.latestMigration, version)
	}
	return nil
}

// results converts goose's results.
func results(in []*goose.MigrationResult) []MigrationResult {
	out := make([]MigrationResult, 0, len(in))
	for _, r := range in {
		out = append(out, MigrationResult{Version: r.Source.Version, Name: path.Base(r.Source.Path), Duration: r.Duration})
	}
	return out
}

// withMigrations runs fn with a goose provider for this database while
// holding the migration lock: on PostgreSQL the advisory lock, taken on a
// connection of its own; on SQLite this process's writer lock, with the
// provider on a connection of its own that has foreign keys off.
func (s *Store) withMigrations(ctx context.Context, fn func(*goose.Provider) error) (err error) {
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	var (
		conn    *sql.DB
		dialect goose.Dialect
	)
	if s.dialect == DialectSQLite {
		unlock, err := s.lockWriters(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		conn, err = openSQLitePool(s.target, sqliteMigrationParams)
		if err != nil {
			return fmt.Errorf("open migration connection: %w", err)
		}
		conn.SetMaxOpenConns(1)
		defer func() { err = errors.Join(err, conn.Close()) }()
		store, err := database.NewStore(goose.DialectSQLite3, MigrationsTable)
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithStore(sqliteStore{store}))
		dialect = goose.DialectCustom
	} else {
		unlock, err := s.lockPostgresMigrations(ctx)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, unlock()) }()
		conn = s.sqlDB
		dialect = goose.DialectPostgres
		opts = append(opts, goose.WithTableName(MigrationsTable))
	}
	p, err := goose.NewProvider(dialect, conn, s.migrations, opts...)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	return fn(p)
}

// lockPostgresMigrations waits, as long as ctx allows, for the session
// advisory lock that serialises migrations, on a connection kept until the
// returned function releases it.
func (s *Store) lockPostgresMigrations(ctx context.Context) (unlock func() error, err error) {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("take migration lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return nil, errors.Join(fmt.Errorf("take migration lock: %w", err), conn.Close())
	}
	return func() error {
		_, err := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey)
		if err != nil {
			// A connection that may still hold the lock must not go back
			// to the pool; closing it ends the session and the lock.
			discard(conn)
			err = fmt.Errorf("release migration lock: %w", err)
		}
		return errors.Join(err, conn.Close())
	}, nil
}

// discard makes database/sql close conn instead of returning it to the pool.
func discard(conn *sql.Conn) {
	// Raw hands back the ErrBadConn returned here; that error is the point.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

// sqliteStore is goose's SQLite store with the checks that make a SQLite
// migration safe: its record is written last in its transaction, so Insert
// and Delete are where the transaction can still be rolled back.
type sqliteStore struct {
	database.Store
}

// Insert records an applied migration unless another process recorded it
// meanwhile, after checking foreign keys.
func (s sqliteStore) Insert(ctx context.Context, db database.DBTxConn, req database.InsertRequest) error {
	if req.Version > 0 {
		var n int
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+MigrationsTable+" WHERE version_id = ?", req.Version).Scan(&n)
		if err != nil {
			return fmt.Errorf("check migration %d: %w", req.Version, err)
		}
		if n > 0 {
			return fmt.Errorf("migration %d: %w", req.Version, errAppliedMeanwhile)
		}
		if err := checkForeignKeys(ctx, db); err != nil {
			return err
		}
	}
	return s.Store.Insert(ctx, db, req)
}

// Delete removes the record of a rolled back migration after checking
// foreign keys.
func (s sqliteStore) Delete(ctx context.Context, db database.DBTxConn, version int64) error {
	if err := checkForeignKeys(ctx, db); err != nil {
		return err
	}
	return s.Store.Delete(ctx, db, version)
}

// checkForeignKeys fails if any row of the database breaks a foreign key.
func checkForeignKeys(ctx context.Context, db database.DBTxConn) error {
	rows, err := db.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	defer rows.Close()
	violations := 0
	var first string
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return fmt.Errorf("check foreign keys: %w", err)
		}
		if violations == 0 {
			first = fmt.Sprintf("a row of %s referencing %s", table, parent)
		}
		violations++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	if violations > 0 {
		return fmt.Errorf("check foreign keys: %d rows break a foreign key, the first %s", violations, first)
	}
	return nil
}
