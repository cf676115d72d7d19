package db

import (
	"database/sql"
	"fmt"
	"io/fs"
)

// ParseURL exposes parseURL to the tests of package db_test.
var ParseURL = parseURL

// SetMigrations makes fsys, goose SQL files of the Store's dialect, the
// migrations of s, for tests of the migration machinery.
func SetMigrations(s *Store, fsys fs.FS) error { return s.setMigrations(fsys) }

// SQLDB returns the Store's pool.
func SQLDB(s *Store) *sql.DB { return s.sqlDB }

// ConnStmtCacheSize exposes connStmtCacheSize.
const ConnStmtCacheSize = connStmtCacheSize

// OpenSQLitePool opens a pool of Parley's SQLite connections on the file
// at path, as the Store opens its own.
func OpenSQLitePool(path string) (*sql.DB, error) { return openSQLitePool(path, sqliteParams) }

// CachedStatements returns the queries the SQLite connection c keeps
// prepared, most recently used first.
func CachedStatements(c *sql.Conn) (queries []string, err error) {
	err = c.Raw(func(dc any) error {
		sc, ok := dc.(*sqliteConn)
		if !ok {
			return fmt.Errorf("not a SQLite connection: %T", dc)
		}
		queries = sc.stmts.queries()
		return nil
	})
	return queries, err
}

// WALAutoCheckpointPages exposes walAutoCheckpointPages.
const WALAutoCheckpointPages = walAutoCheckpointPages

// Checkpoints returns how many checkpoints the SQLite Store s's
// checkpointer has run.
func Checkpoints(s *Store) int64 { return s.checkpoints.Load() }

// BackgroundSyncs returns how many syncs of the checkpointers' files went
// through kernel AIO, over every Store of the process.
func BackgroundSyncs() int64 { return backgroundSyncs.Load() }
