// Package db opens Parley's database, migrates its schema and runs write
// transactions against it.
//
// Two backends are supported: SQLite (a single file, the default) and
// PostgreSQL. Both are reached through GORM; the rest of Parley sees only a
// *Store, reads through Store.DB and writes through Store.Write.
//
// On SQLite the file is opened in WAL mode, so reads run in parallel with
// each other and with the single writer. Every transaction begins with BEGIN
// IMMEDIATE and connections wait up to ten seconds for a lock held by another
// process; within one process the writers additionally queue on a Go-side
// lock, so they never contend for SQLite's lock among themselves.
//
// The schema is versioned: SQL migrations per dialect, embedded in the
// binary and applied with goose (Store.MigrateUp). Package db does not know
// Parley's models; the migrations create their tables.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ncruces/go-sqlite3/gormlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// The values Store.Dialect returns.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// DefaultSQLitePath is the SQLite file, relative to the working directory,
// that Open uses when it is given an empty URL.
const DefaultSQLitePath = "parley.db"

// acceptedURLs lists the URL forms Open accepts, for error messages.
const acceptedURLs = `"" (SQLite file ` + DefaultSQLitePath + `), postgres://…, postgresql://…, sqlite://PATH or file:PATH`

// Connection pool settings.
const (
	sqliteMaxOpenConns   = 8
	postgresMaxOpenConns = 20
	connMaxIdleTime      = 5 * time.Minute
	postgresConnLifetime = time.Hour
)

// sqliteParams is the query part of every SQLite DSN (see
// github.com/ncruces/go-sqlite3/driver). busy_timeout comes first so that
// the pragmas after it wait for locks instead of failing. The connections
// write the log through the log VFS (walVFSName).
const sqliteParams = "_pragma=busy_timeout(10000)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(NORMAL)" +
	"&_pragma=wal_autocheckpoint(16000)" + // walAutoCheckpointPages
	"&_pragma=foreign_keys(ON)" +
	"&_txlock=immediate" +
	"&vfs=" + walVFSName

// sqliteMigrationParams is sqliteParams for the connection that migrations
// run on: foreign keys are off there, as SQLite's procedure for schema
// changes wants, and checked before each migration commits.
const sqliteMigrationParams = "_pragma=busy_timeout(10000)" +
	"&_pragma=foreign_keys(OFF)" +
	"&_txlock=immediate"

// Store is the database handle Parley uses: a GORM connection pool plus,
// on SQLite, the lock that queues the writers of this process.
//
// A Store is safe for concurrent use by multiple goroutines. Open one per
// process and share it; Close it once, when nothing uses it any more.
type Store struct {
	gorm    *gorm.DB
	sqlDB   *sql.DB
	dialect string
	// target names the database in messages: the SQLite path or the
	// PostgreSQL URL without its password.
	target string
	// writeSlot holds a token while a writer of this process is inside a
	// transaction. It is nil on PostgreSQL, whose writers need no queue.
	writeSlot chan struct{}
	// migrations holds the goose SQL files of the dialect, and
	// latestMigration the newest version among them.
	migrations      fs.FS
	latestMigration int64
	// queries holds the QueryObserver of ObserveQueries.
	queries *atomic.Pointer[QueryObserver]
	// rawURL is the PostgreSQL URL as given, for ListenerPool.
	rawURL string
	// queueDB is QueueDB's pool on SQLite, opened once; an atomic so
	// that MigrateUp may find it while QueueDB opens it.
	queueOnce sync.Once
	queueDB   atomic.Pointer[sql.DB]
	queueErr  error
	// checkpointer copies the SQLite write-ahead log into the database
	// file off the commits' path; nil on PostgreSQL. checkpoints counts
	// its checkpoints.
	checkpointer *checkpointer
	checkpoints  atomic.Int64
}

// Open connects to the database that rawURL names and checks that it
// answers. It changes nothing in the database: MigrateUp creates and updates
// the schema.
//
// rawURL is one of:
//   - "": the SQLite file parley.db in the working directory;
//   - postgres://… or postgresql://…: a PostgreSQL database, passed to pgx
//     unchanged;
//   - sqlite://PATH: the SQLite file PATH, so sqlite:///abs/parley.db is
//     /abs/parley.db and sqlite://parley.db is relative;
//   - file:PATH (or file:///abs/PATH): the SQLite file PATH.
//
// SQLite paths are percent-decoded and may carry no query string: Open sets
// the pragmas itself. In-memory SQLite databases are refused, because WAL mode
// and a pool of connections need a file. GORM's messages go to logger (nil
// discards them); Open logs one line at info level on success.
func Open(ctx context.Context, rawURL string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dialect, target, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	queryLog := newGormLogger(logger)
	cfg := &gorm.Config{
		TranslateError: true,
		// GORM's statement cache caches a statement first prepared inside
		// a transaction as bound to it, so each later transaction prepares
		// it again, until it happens to run outside one: on PostgreSQL a
		// Parse round trip before the statement and a Deallocate after the
		// commit, where pgx already keeps prepared statements per
		// connection. On SQLite, each connection keeps them instead (see
		// connStmtCache).
		PrepareStmt: false,
		// Name the model's columns instead of "SELECT *", whose result
		// changes shape on a connection that prepared it before another
		// node's migration added a column (see Columns).
		QueryFields:            true,
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		Logger:                 queryLog,
	}
	s := &Store{dialect: dialect, queries: queryLog.observer}
	if err := s.setMigrations(migrationsOf(dialect)); err != nil {
		return nil, err
	}
	switch dialect {
	case DialectSQLite:
		s.target = target
		s.writeSlot = make(chan struct{}, 1)
		s.gorm, s.sqlDB, err = openSQLite(ctx, target, cfg)
		if err == nil {
			if err = s.startCheckpointer(ctx, logger); err != nil {
				err = errors.Join(err, s.sqlDB.Close())
			}
		}
	default:
		s.target, err = redactURL(target)
		if err != nil {
			return nil, err
		}
		s.rawURL = target
		s.gorm, s.sqlDB, err = openPostgres(ctx, target, s.target, cfg)
	}
	if err != nil {
		return nil, err
	}
	logger.InfoContext(ctx, "database opened", "dialect", s.dialect, "database", s.target)
	return s, nil
}

// CheckURL reports whether Open accepts rawURL, without connecting: the
// error says what is wrong and never holds a password. It is safe for
// concurrent use.
func CheckURL(rawURL string) error {
	dialect, target, err := parseURL(rawURL)
	if err != nil || dialect != DialectPostgres {
		return err
	}
	if _, err := redactURL(target); err != nil {
		return err
	}
	if _, err := pgx.ParseConfig(target); err != nil {
		// pgx's message quotes the URL, password masked at best effort:
		// keep only the reason.
		var perr *pgconn.ParseConfigError
		if errors.As(err, &perr) && perr.Unwrap() != nil {
			return fmt.Errorf("parse postgres URL: %w", perr.Unwrap())
		}
		return errors.New("parse postgres URL: invalid connection settings")
	}
	return nil
}

// parseURL applies Open's URL rules. It returns the dialect and, for SQLite,
// the file path or, for PostgreSQL, the URL itself.
func parseURL(rawURL string) (dialect, target string, err error) {
	switch {
	case rawURL == "":
		return DialectSQLite, DefaultSQLitePath, nil
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return DialectPostgres, rawURL, nil
	case strings.HasPrefix(rawURL, "sqlite://"):
		path, err := sqlitePath(rawURL, strings.TrimPrefix(rawURL, "sqlite://"))
		return DialectSQLite, path, err
	case strings.HasPrefix(rawURL, "file:"):
		rest := strings.TrimPrefix(rawURL, "file:")
		if authority, ok := strings.CutPrefix(rest, "//"); ok {
			// file://HOST/PATH: only the local host makes sense.
			host, _, _ := strings.Cut(authority, "/")
			if host != "" && host != "localhost" {
				return "", "", fmt.Errorf("database URL %q: file URLs must name a local file, not host %q", rawURL, host)
			}
			rest = strings.TrimPrefix(authority, host)
		}
		path, err := sqlitePath(rawURL, rest)
		return DialectSQLite, path, err
	}
	if scheme, _, ok := strings.Cut(rawURL, ":"); ok {
		// Show only the scheme: the rest may hold a password.
		return "", "", fmt.Errorf("unsupported database URL scheme %q; accepted forms: %s", scheme, acceptedURLs)
	}
	return "", "", fmt.Errorf("unsupported database URL %q; accepted forms: %s", rawURL, acceptedURLs)
}

// sqlitePath checks and percent-decodes the path part of a SQLite URL.
func sqlitePath(rawURL, rest string) (string, error) {
	if strings.ContainsAny(rest, "?#") {
		return "", fmt.Errorf("database URL %q: SQLite URLs take no query string or fragment; Parley sets the pragmas itself", rawURL)
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("database URL %q: %w", rawURL, err)
	}
	switch {
	case path == "":
		return "", fmt.Errorf("database URL %q names no file; accepted forms: %s", rawURL, acceptedURLs)
	case path == ":memory:":
		return "", fmt.Errorf("database URL %q: in-memory SQLite is not supported (WAL mode and a pool of connections need a file); name a file instead", rawURL)
	case strings.Contains(path, "?"):
		return "", fmt.Errorf("database URL %q: SQLite file names containing '?' are not supported", rawURL)
	case strings.HasPrefix(path, "file:"):
		// SQLite would read such a name as a URI, which could even mean
		// an in-memory database.
		return "", fmt.Errorf("database URL %q: use either sqlite://PATH or file:PATH, not both", rawURL)
	}
	return path, nil
}

// redactURL returns a PostgreSQL URL with its password masked, for messages.
func redactURL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// A *url.Error repeats the whole URL, password included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return "", fmt.Errorf("parse postgres URL: %w", err)
	}
	return u.Redacted(), nil
}

// openSQLite opens the SQLite file at path and configures its pool, whose
// connections keep repeated statements prepared (see connStmtCache).
func openSQLite(ctx context.Context, path string, cfg *gorm.Config) (*gorm.DB, *sql.DB, error) {
	sqlDB, err := openSQLitePool(path, sqliteParams)
	if err != nil {
		return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	gdb, err := gorm.Open(gormlite.OpenDB(sqlDB), cfg)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open sqlite %s: %w", path, err), sqlDB.Close())
	}
	sqlDB.SetMaxOpenConns(sqliteMaxOpenConns)
	sqlDB.SetMaxIdleConns(sqliteMaxOpenConns)
	sqlDB.SetConnMaxIdleTime(connMaxIdleTime)
	// journal_mode(WAL) quietly keeps the old mode where WAL is impossible,
	// such as on some network file systems.
	var mode string
	if err := gdb.WithContext(ctx).Raw("PRAGMA journal_mode").Scan(&mode).Error; err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open sqlite %s: read journal mode: %w", path, err), sqlDB.Close())
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, nil, errors.Join(fmt.Errorf("open sqlite %s: journal mode is %q, not WAL; put the file on a local file system", path, mode), sqlDB.Close())
	}
	return gdb, sqlDB, nil
}

// openPostgres connects to the PostgreSQL database at rawURL and configures
// its pool; redacted names it in errors.
func openPostgres(ctx context.Context, rawURL, redacted string, cfg *gorm.Config) (*gorm.DB, *sql.DB, error) {
	gdb, err := gorm.Open(&postgresDialector{Dialector: postgres.Dialector{Config: &postgres.Config{DSN: rawURL}}}, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open postgres %s: %w", redacted, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, nil, fmt.Errorf("open postgres %s: %w", redacted, err)
	}
	sqlDB.SetMaxOpenConns(postgresMaxOpenConns)
	sqlDB.SetMaxIdleConns(postgresMaxOpenConns)
	sqlDB.SetConnMaxIdleTime(connMaxIdleTime)
	sqlDB.SetConnMaxLifetime(postgresConnLifetime)
	if err := sqlDB.PingContext(ctx); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open postgres %s: %w", redacted, err), sqlDB.Close())
	}
	return gdb, sqlDB, nil
}

// postgresDialector is GORM's PostgreSQL dialector without the cost of
// Explain when there is nothing to explain. GORM calls Explain for every
// statement that the logger traces, and the query observer asks for each
// statement's SQL; gormLogger drops the arguments first (ParamsFilter), yet
// the PostgreSQL dialector still ran two regular expressions over the whole
// statement, which was 5 % of the send path's CPU (a batch's INSERT has a
// placeholder per column per message).
type postgresDialector struct {
	postgres.Dialector
}

// Explain returns sql unchanged when there are no vars, and otherwise what
// the PostgreSQL dialector's Explain returns.
func (d *postgresDialector) Explain(sql string, vars ...any) string {
	if len(vars) == 0 {
		return sql
	}
	return d.Dialector.Explain(sql, vars...)
}

// DB returns a GORM handle bound to ctx, for reads. Each call returns a new
// session, so the result may be used from one goroutine while other
// goroutines call DB; build one query chain per call. Writes go through
// Write instead.
func (s *Store) DB(ctx context.Context) *gorm.DB {
	return s.gorm.WithContext(ctx)
}

// Write runs fn in one transaction, committing if fn returns nil and rolling
// back if it returns an error or panics. fn's error is returned unchanged.
//
// On SQLite, Write first waits, as long as ctx allows, for the other Write
// calls of this process to finish, so that they queue in Go rather than
// contend for SQLite's lock; the transaction then begins with BEGIN
// IMMEDIATE, which waits for writers in other processes. On PostgreSQL Write
// is a plain transaction at the server's default isolation level.
//
// Write is safe for concurrent use. fn must use only tx, must not keep it
// after returning, and must not call Write or MigrateUp: on SQLite that would
// wait for itself forever.
func (s *Store) Write(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.writeSlot != nil {
		unlock, err := s.lockWriters(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	return s.gorm.WithContext(ctx).Transaction(fn)
}

// lockWriters waits until no other writer of this process holds the SQLite
// writer lock, or until ctx ends, and takes the lock.
func (s *Store) lockWriters(ctx context.Context) (unlock func(), err error) {
	select {
	case s.writeSlot <- struct{}{}:
		return func() { <-s.writeSlot }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for sqlite writer lock: %w", context.Cause(ctx))
	}
}

// ObserveQueries makes f learn of every statement run through GORM from
// now on (for metrics and traces); nil stops it. Statements of the delivery
// queue's own pool (QueueDB) and of migrations are not observed. Safe for
// concurrent use.
func (s *Store) ObserveQueries(f QueryObserver) {
	if f == nil {
		s.queries.Store(nil)
		return
	}
	s.queries.Store(&f)
}

// Dialect returns DialectSQLite or DialectPostgres. It is safe for concurrent
// use.
func (s *Store) Dialect() string {
	return s.dialect
}

// Ping checks that the database answers, for readiness probes. It is safe for
// concurrent use.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s %s: %w", s.dialect, s.target, err)
	}
	return nil
}

// Close closes the connection pool, waiting for running queries to finish.
// Call it once, after the last use of the Store.
func (s *Store) Close() error {
	errs := []error{s.stopCheckpointer()}
	if q := s.queueDB.Load(); q != nil {
		errs = append(errs, q.Close())
	}
	errs = append(errs, s.sqlDB.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s %s: %w", s.dialect, s.target, err)
	}
	return nil
}
