package db_test

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/parleytest"
)

// migrationName is the file name every migration must have.
var migrationName = regexp.MustCompile(`^[0-9]{5}_[a-z0-9_]+\.sql$`)

// migrationFiles returns the migration files of dialect, from the source
// tree that the binary embeds.
func migrationFiles(t *testing.T, dialect string) fs.FS {
	t.Helper()
	return os.DirFS(filepath.Join("migrations", dialect))
}

// TestMigrationFiles: every migration exists for both dialects under the same
// name, names are NNNNN_snake_case.sql, versions run 1, 2, 3… without gaps
// or duplicates, and each file has an Up and a Down section.
func TestMigrationFiles(t *testing.T) {
	names := map[string][]string{}
	for _, dialect := range []string{db.DialectSQLite, db.DialectPostgres} {
		found, err := fs.Glob(migrationFiles(t, dialect), "*")
		if err != nil {
			t.Fatal(err)
		}
		names[dialect] = found
	}
	if !slices.Equal(names[db.DialectSQLite], names[db.DialectPostgres]) {
		t.Fatalf("the dialects' migrations differ:\nsqlite:   %q\npostgres: %q\nevery migration needs a file of the same name in migrations/sqlite and migrations/postgres",
			names[db.DialectSQLite], names[db.DialectPostgres])
	}
	for i, name := range names[db.DialectSQLite] {
		if !migrationName.MatchString(name) {
			t.Errorf("%s: want a name like 00002_add_channel_topic.sql", name)
			continue
		}
		if want := fmt.Sprintf("%05d_", i+1); !strings.HasPrefix(name, want) {
			t.Errorf("%s: want version %s (versions run 1, 2, 3… without gaps or duplicates; renumber yours after a rebase)", name, want[:5])
		}
		for _, dialect := range []string{db.DialectSQLite, db.DialectPostgres} {
			body, err := fs.ReadFile(migrationFiles(t, dialect), name)
			if err != nil {
				t.Fatal(err)
			}
			for _, section := range []string{"-- +goose Up\n", "-- +goose Down\n"} {
				if !strings.Contains(string(body), section) {
					t.Errorf("%s/%s has no %q section", dialect, name, strings.TrimSpace(section))
				}
			}
		}
	}
}

// TestMigrationsUpDownUp applies the migrations one at a time on a fresh
// database; after each, rolling it back must restore the schema it found,
// and applying it again must give the same schema as the first time. Each
// must change the schema, unless its Up section for this dialect holds no
// statement (a change that only the other dialect needs).
func TestMigrationsUpDownUp(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		ctx := t.Context()
		s := openStore(t, b.NewURL(t))
		all := migrationFiles(t, s.Dialect())
		names, err := fs.Glob(all, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		before := schemaOf(t, s)
		for i, name := range names {
			if err := db.SetMigrations(s, firstFiles(t, all, names[:i+1])); err != nil {
				t.Fatal(err)
			}
			up(t, s, name)
			after := schemaOf(t, s)
			if after == before && !emptyUp(t, all, name) {
				t.Errorf("%s changed nothing", name)
			}
			if _, err := s.MigrateDownTo(ctx, int64(i)); err != nil {
				t.Fatalf("down from %s: %v", name, err)
			}
			if got := schemaOf(t, s); got != before {
				t.Fatalf("down from %s did not restore the schema:\n%s", name, diff(before, got))
			}
			up(t, s, name)
			if got := schemaOf(t, s); got != after {
				t.Fatalf("%s again gave another schema:\n%s", name, diff(after, got))
			}
			before = after
		}
	})
}

// emptyUp reports whether the Up section of the migration name in fsys
// holds only blank lines and comments.
func emptyUp(t *testing.T, fsys fs.FS, name string) bool {
	t.Helper()
	body, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(body), "-- +goose Up\n")
	upSection, _, _ := strings.Cut(rest, "-- +goose Down\n")
	for line := range strings.Lines(upSection) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "--") {
			return false
		}
	}
	return true
}

// up applies the pending migrations of s, which must be only name.
func up(t *testing.T, s *db.Store, name string) {
	t.Helper()
	applied, err := s.MigrateUp(t.Context())
	if err != nil {
		t.Fatalf("up to %s: %v", name, err)
	}
	if len(applied) != 1 || applied[0].Name != name {
		t.Fatalf("up to %s applied %+v", name, applied)
	}
}

// firstFiles returns the files names of fsys as a file system of their own.
func firstFiles(t *testing.T, fsys fs.FS, names []string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = &fstest.MapFile{Data: body}
	}
	return out
}

// TestMigrateAdoptsAutoMigrateDatabases: databases created by Parley before
// it had versioned migrations (by GORM's AutoMigrate, kept as fixtures under
// testdata/legacy) upgrade to the schema of a fresh database and keep every
// row.
func TestMigrateAdoptsAutoMigrateDatabases(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		ctx := t.Context()
		fresh := openStore(t, b.NewURL(t))
		if _, err := fresh.MigrateUp(ctx); err != nil {
			t.Fatalf("migrate a fresh database: %v", err)
		}
		legacy := openStore(t, legacyDatabase(t, b))
		if v, err := legacy.SchemaVersion(ctx); err != nil || v.Current != 0 || !v.Behind() {
			t.Fatalf("legacy database: SchemaVersion = %+v, %v; want 0 and behind", v, err)
		}
		rows, columns := rowsOf(t, legacy, nil)
		if !strings.Contains(rows, "Hello, world") {
			t.Fatalf("the legacy fixture lacks its messages:\n%s", rows)
		}
		if _, err := legacy.MigrateUp(ctx); err != nil {
			t.Fatalf("migrate the legacy database: %v", err)
		}
		if want, got := schemaOf(t, fresh), schemaOf(t, legacy); got != want {
			t.Errorf("the legacy database's schema differs from a fresh one:\n%s", diff(want, got))
		}
		// Later migrations add columns: the rows keep their old ones.
		if got, _ := rowsOf(t, legacy, columns); got != rows {
			t.Errorf("rows changed:\n%s", diff(rows, got))
		}
		if v, err := legacy.SchemaVersion(ctx); err != nil || v.Behind() || v.Ahead() {
			t.Errorf("after MigrateUp: SchemaVersion = %+v, %v; want current", v, err)
		}
	})
}

// legacyDatabase returns the URL of a copy of the legacy fixture of b.
func legacyDatabase(t *testing.T, b parleytest.Backend) string {
	t.Helper()
	if b.Name == db.DialectSQLite {
		data, err := os.ReadFile(filepath.Join("testdata", "legacy", "automigrate.sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "legacy.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return "sqlite://" + path
	}
	dbURL := b.NewURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile(filepath.Join("testdata", "legacy", "automigrate.postgres.sql"))
	if err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(string(dump), "parley_legacy.", u.Query().Get("search_path")+".")
	// The dump empties search_path on its connection: load it through a
	// Store of its own.
	loader, err := db.Open(t.Context(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = loader.DB(t.Context()).Exec(script).Error
	if cerr := loader.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatalf("load the legacy dump: %v", err)
	}
	return dbURL
}

// TestModelsMatchMigrations: GORM's AutoMigrate of every model changes
// nothing on a migrated database, so the models and the migrations agree
// (a model field without a migration, or a column of another type, fails).
func TestModelsMatchMigrations(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := openStore(t, b.NewURL(t))
		if _, err := s.MigrateUp(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := schemaOf(t, s)
		if err := s.DB(t.Context()).AutoMigrate(models.All()...); err != nil {
			t.Fatalf("AutoMigrate: %v", err)
		}
		if got := schemaOf(t, s); got != want {
			t.Errorf("the models differ from the migrations; AutoMigrate changed:\n%s", diff(want, got))
		}
	})
}

// testMigrations are migrations for the tests of the machinery: the real
// first one, then a column and a table, which fail if run twice.
func testMigrations(t *testing.T, dialect string) fstest.MapFS {
	t.Helper()
	first, err := fs.ReadFile(migrationFiles(t, dialect), "00001_initial_schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	return fstest.MapFS{
		"00001_initial_schema.sql": {Data: first},
		"00002_user_color.sql": {Data: []byte("-- +goose Up\nALTER TABLE users ADD COLUMN color text;\n" +
			"-- +goose Down\nALTER TABLE users DROP COLUMN color;\n")},
		"00003_widgets.sql": {Data: []byte("-- +goose Up\nCREATE TABLE widgets (id integer PRIMARY KEY);\n" +
			"-- +goose Down\nDROP TABLE widgets;\n")},
	}
}

// TestMigrateConcurrent: stores that migrate one database at once (as nodes
// starting together do) all succeed, and each migration runs once.
func TestMigrateConcurrent(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		dbURL := b.NewURL(t)
		const n = 4
		stores := make([]*db.Store, n)
		for i := range stores {
			stores[i] = openStore(t, dbURL)
			if err := db.SetMigrations(stores[i], testMigrations(t, b.Name)); err != nil {
				t.Fatal(err)
			}
		}
		start := make(chan struct{})
		errs := make([]error, n)
		applied := make([]int, n)
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() {
				<-start
				res, err := s.MigrateUp(t.Context())
				errs[i], applied[i] = err, len(res)
			})
		}
		close(start)
		wg.Wait()
		total := 0
		for i, err := range errs {
			if err != nil {
				t.Errorf("store %d: %v", i, err)
			}
			total += applied[i]
		}
		if total != 3 {
			t.Errorf("the stores applied %v migrations; want 3 in all", applied)
		}
		var records []struct{ VersionID int64 }
		if err := stores[0].DB(t.Context()).Raw("SELECT version_id FROM " + db.MigrationsTable + " ORDER BY id").Scan(&records).Error; err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(records) != "[{0} {1} {2} {3}]" {
			t.Errorf("recorded versions %v; want 0 to 3 once each", records)
		}
	})
}

// TestMigrateRefusesNewerSchema: a binary whose newest migration is older
// than the database's changes nothing and says so; /readyz and `parley
// serve` rely on SchemaVersion.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		ctx := t.Context()
		dbURL := b.NewURL(t)
		newer := openStore(t, dbURL)
		if err := db.SetMigrations(newer, testMigrations(t, b.Name)); err != nil {
			t.Fatal(err)
		}
		if _, err := newer.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		// A binary that knows the first migration only, however many the
		// real one has.
		older := openStore(t, dbURL)
		first := firstFiles(t, migrationFiles(t, b.Name), []string{"00001_initial_schema.sql"})
		if err := db.SetMigrations(older, first); err != nil {
			t.Fatal(err)
		}
		v, err := older.SchemaVersion(ctx)
		if err != nil || !v.Ahead() || v.Current != 3 || v.Latest != 1 {
			t.Fatalf("SchemaVersion = %+v, %v; want 3 ahead of 1", v, err)
		}
		for name, run := range map[string]func() error{
			"MigrateUp":     func() error { _, err := older.MigrateUp(ctx); return err },
			"MigrateDownTo": func() error { _, err := older.MigrateDownTo(ctx, 0); return err },
		} {
			if err := run(); !errors.Is(err, db.ErrSchemaTooNew) {
				t.Errorf("%s: error %v; want ErrSchemaTooNew", name, err)
			}
		}
		if v2, err := older.SchemaVersion(ctx); err != nil || v2 != v {
			t.Errorf("after the refusals: SchemaVersion = %+v, %v; want %+v", v2, err, v)
		}
	})
}

// TestMigrationStatus lists pending and applied migrations.
func TestMigrationStatus(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		ctx := t.Context()
		s := openStore(t, b.NewURL(t))
		if err := db.SetMigrations(s, testMigrations(t, b.Name)); err != nil {
			t.Fatal(err)
		}
		status := func() string {
			t.Helper()
			list, err := s.MigrationStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, m := range list {
				out = append(out, fmt.Sprintf("%d %s %v", m.Version, m.Name, m.Applied()))
			}
			return strings.Join(out, ", ")
		}
		if got, want := status(), "1 00001_initial_schema.sql false, 2 00002_user_color.sql false, 3 00003_widgets.sql false"; got != want {
			t.Errorf("status of a fresh database: %s; want %s", got, want)
		}
		if _, err := s.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MigrateDownTo(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if got, want := status(), "1 00001_initial_schema.sql true, 2 00002_user_color.sql true, 3 00003_widgets.sql false"; got != want {
			t.Errorf("status: %s; want %s", got, want)
		}
		if v, err := s.SchemaVersion(ctx); err != nil || v != (db.SchemaVersion{Current: 2, Latest: 3}) {
			t.Errorf("SchemaVersion = %+v, %v; want 2 of 3", v, err)
		}
	})
}

// TestMigrateSQLiteForeignKeys follows SQLite's procedure for schema changes:
// a migration that rebuilds a table keeps the rows that reference it with ON
// DELETE CASCADE, and one that leaves a dangling reference is rolled back.
func TestMigrateSQLiteForeignKeys(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "fk.db"))
	files := fstest.MapFS{
		"00001_tables.sql": {Data: []byte(`-- +goose Up
CREATE TABLE parents (id integer PRIMARY KEY, score integer);
CREATE TABLE children (id integer PRIMARY KEY, parent_id integer NOT NULL REFERENCES parents (id) ON DELETE CASCADE);
INSERT INTO parents VALUES (1, 7);
INSERT INTO children VALUES (1, 1);
-- +goose Down
DROP TABLE children;
DROP TABLE parents;
`)},
		"00002_rebuild_parents.sql": {Data: []byte(`-- +goose Up
CREATE TABLE parents_new (id integer PRIMARY KEY, score real);
INSERT INTO parents_new SELECT id, score FROM parents;
DROP TABLE parents;
ALTER TABLE parents_new RENAME TO parents;
-- +goose Down
SELECT 1;
`)},
	}
	if err := db.SetMigrations(s, files); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("MigrateUp: %v", err)
	}
	var children int64
	if err := s.DB(ctx).Raw("SELECT count(*) FROM children").Scan(&children).Error; err != nil || children != 1 {
		t.Fatalf("%d children after rebuilding their parents (%v); want 1", children, err)
	}
	files["00003_orphan.sql"] = &fstest.MapFile{Data: []byte(`-- +goose Up
INSERT INTO children VALUES (2, 99);
-- +goose Down
DELETE FROM children WHERE id = 2;
`)}
	if err := db.SetMigrations(s, files); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MigrateUp(ctx); err == nil || !strings.Contains(err.Error(), "foreign key") {
		t.Fatalf("MigrateUp of a migration that breaks a foreign key: error %v", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v.Current != 2 {
		t.Fatalf("SchemaVersion = %+v, %v; want 2", v, err)
	}
	if err := s.DB(ctx).Raw("SELECT count(*) FROM children").Scan(&children).Error; err != nil || children != 1 {
		t.Fatalf("%d children after the failed migration (%v); want 1", children, err)
	}
	// Foreign keys are enforced again on the Store's own connections.
	if err := s.DB(ctx).Exec("INSERT INTO children VALUES (3, 99)").Error; err == nil {
		t.Fatal("inserted an orphan outside a migration")
	}
}

// schemaOf describes the tables, columns, indexes and constraints of the
// database s is on (the migrations table aside), one sorted line each.
func schemaOf(t *testing.T, s *db.Store) string {
	t.Helper()
	ctx := t.Context()
	var lines []string
	add := func(query string, args ...any) {
		t.Helper()
		rows, err := s.DB(ctx).Raw(query, args...).Rows()
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		lines = append(lines, scanLines(t, rows, "")...)
	}
	if s.Dialect() == db.DialectSQLite {
		for _, table := range tablesOf(t, s) {
			add("SELECT 'column' AS kind, ? AS tbl, * FROM pragma_table_xinfo(?)", table, table)
			add("SELECT 'index' AS kind, ? AS tbl, * FROM pragma_index_list(?)", table, table)
			add("SELECT 'index column' AS kind, il.name AS idx, ii.* FROM pragma_index_list(?) il, pragma_index_xinfo(il.name) ii", table)
			add("SELECT 'foreign key' AS kind, ? AS tbl, * FROM pragma_foreign_key_list(?)", table, table)
		}
	} else {
		// Not ordinal_position: PostgreSQL never reuses the position of a
		// dropped column, so a column added, dropped and added again by a
		// migration's Up, Down and Up lands further right.
		add(`SELECT 'column' AS kind, table_name, column_name, data_type, character_maximum_length,
			numeric_precision, is_nullable, column_default
			FROM information_schema.columns WHERE table_schema = current_schema() AND table_name <> ?`, db.MigrationsTable)
		add(`SELECT 'index' AS kind, tablename, indexname, replace(indexdef, current_schema() || '.', '') AS indexdef
			FROM pg_indexes WHERE schemaname = current_schema() AND tablename <> ?`, db.MigrationsTable)
		add(`SELECT 'constraint' AS kind, conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
			FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND conrelid::regclass::text <> ?`, db.MigrationsTable)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// tablesOf lists the tables of s but the migrations table.
func tablesOf(t *testing.T, s *db.Store) []string {
	t.Helper()
	query := "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ? ORDER BY name"
	if s.Dialect() == db.DialectPostgres {
		query = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> ? ORDER BY tablename"
	}
	var tables []string
	if err := s.DB(t.Context()).Raw(query, db.MigrationsTable).Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	return tables
}

// rowsOf describes every row of every table of s but the migrations table,
// with the given columns of each table (every column when columns is nil;
// with columns, only its tables), and returns the columns it described.
func rowsOf(t *testing.T, s *db.Store, columns map[string][]string) (string, map[string][]string) {
	t.Helper()
	var lines []string
	seen := map[string][]string{}
	for _, table := range tablesOf(t, s) {
		list := "*"
		if columns != nil {
			// Tables that later migrations create (River's) are not
			// compared.
			if _, ok := columns[table]; !ok {
				continue
			}
			list = strings.Join(columns[table], ", ")
		}
		rows, err := s.DB(t.Context()).Raw("SELECT " + list + " FROM " + table).Rows()
		if err != nil {
			t.Fatal(err)
		}
		if seen[table], err = rows.Columns(); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, scanLines(t, rows, table+": ")...)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), seen
}

// scanLines formats each row of rows as one line, columns named, after
// prefix, and closes rows.
func scanLines(t *testing.T, rows interface {
	Columns() ([]string, error)
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}, prefix string) []string {
	t.Helper()
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		values := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fields := make([]string, len(cols))
		for i, v := range values {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			fields[i] = fmt.Sprintf("%s=%v", cols[i], v)
		}
		lines = append(lines, prefix+strings.Join(fields, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// diff lists the lines only in want (-) and only in got (+).
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMigrateUpRefreshesConnections: queries after MigrateUp see the schema
// it made on every connection of the pool, also those that read the old
// schema before it. SQLite expands "SELECT *" with the schema a connection
// holds when the statement is prepared, and rebuilds the statement at its
// first step when the schema has changed meanwhile: a connection left with
// the old schema answered the first such query with "bad parameter or
// other API misuse" (the driver read more columns than it had announced).
func TestMigrateUpRefreshesConnections(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		ctx := t.Context()
		fresh := openStore(t, b.NewURL(t))
		if _, err := fresh.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		_, columns := rowsOf(t, fresh, nil)

		s := openStore(t, legacyDatabase(t, b))
		pool, err := s.DB(ctx).DB()
		if err != nil {
			t.Fatal(err)
		}
		// Few connections, so that holding them all stays far from
		// PostgreSQL's connection limit while other packages test.
		pool.SetMaxOpenConns(4)
		// onEveryConn runs query on as many connections of the pool at
		// once as it holds, and returns the columns each answered with.
		onEveryConn := func(query string) [][]string {
			t.Helper()
			conns := make([]*sql.Conn, pool.Stats().MaxOpenConnections)
			defer func() {
				for _, c := range conns {
					if c != nil {
						if err := c.Close(); err != nil {
							t.Error(err)
						}
					}
				}
			}()
			var out [][]string
			for i := range conns {
				if conns[i], err = pool.Conn(ctx); err != nil {
					t.Fatal(err)
				}
				rows, err := conns[i].QueryContext(ctx, query)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				cols, err := rows.Columns()
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, cols)
				lines := scanLines(t, rows, "")
				if len(lines) == 0 {
					t.Fatalf("connection %d: no rows", i)
				}
			}
			return out
		}
		onEveryConn("SELECT * FROM users")
		if _, err := s.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		for i, got := range onEveryConn("SELECT * FROM users") {
			if !slices.Equal(got, columns["users"]) {
				t.Errorf("connection %d: SELECT * FROM users after MigrateUp has columns %v, want %v", i, got, columns["users"])
			}
		}
	})
}

// TestQueriesSurviveAnotherNodesMigration: a node whose connections ran
// its queries before another node's migration added a column answers
// them unchanged after it: GORM names the model's columns (QueryFields)
// and hand-written selections use db.Columns, where "SELECT *" changed
// shape under the prepared statement (SQLite: "bad parameter or other API
// misuse"; PostgreSQL: "cached plan must not change result type").
func TestQueriesSurviveAnotherNodesMigration(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		ctx := t.Context()
		url := b.NewURL(t)
		s := openStore(t, url)
		if _, err := s.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		pool, err := s.DB(ctx).DB()
		if err != nil {
			t.Fatal(err)
		}
		pool.SetMaxOpenConns(1) // every query on the one connection
		err = s.DB(ctx).Create(&models.User{ID: "u1", Identity: "alice", CreatedAt: time.Now(), UpdatedAt: time.Now()}).Error
		if err != nil {
			t.Fatal(err)
		}
		queries := map[string]func() error{
			"Take": func() error {
				var u models.User
				return s.DB(ctx).Take(&u, "identity = ?", "alice").Error
			},
			"Columns": func() error {
				var us []models.User
				return s.DB(ctx).Table("users AS u").Select(db.Columns(s.DB(ctx), &models.User{}, "u")).Where("u.identity = ?", "alice").Scan(&us).Error
			},
		}
		for range 3 { // prepared and kept
			for name, q := range queries {
				if err := q(); err != nil {
					t.Fatalf("%s before: %v", name, err)
				}
			}
		}
		other := openStore(t, url)
		if err := other.DB(ctx).Exec("ALTER TABLE users ADD COLUMN color text").Error; err != nil {
			t.Fatal(err)
		}
		for name, q := range queries {
			if err := q(); err != nil {
				t.Errorf("%s after another node added a column: %v", name, err)
			}
		}
	})
}
