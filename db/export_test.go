package db

import "io/fs"

// ParseURL exposes parseURL to the tests of package db_test.
var ParseURL = parseURL

// SetMigrations makes fsys, goose SQL files of the Store's dialect, the
// migrations of s, for tests of the migration machinery.
func SetMigrations(s *Store, fsys fs.FS) error { return s.setMigrations(fsys) }

// StmtCacheSize exposes stmtCacheSize.
const StmtCacheSize = stmtCacheSize

// PreparedStatements returns how many statements the SQLite Store s keeps
// prepared.
func PreparedStatements(s *Store) int {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	return s.stmts.prepared.Len()
}
