package db_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/parleytest"
)

// event is a test-only model with time columns.
type event struct {
	ID     uint `gorm:"primaryKey"`
	At     time.Time
	SeenAt *time.Time
}

// openSQLite returns a migrated Store on a fresh SQLite file.
func openSQLite(t *testing.T) *db.Store {
	t.Helper()
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "p.db"))
	if _, err := s.MigrateUp(t.Context()); err != nil {
		t.Fatalf("MigrateUp: %v", err)
	}
	return s
}

// TestSQLiteTimes: time values are stored as text in the layout that
// databases made by Parley's earlier SQLite driver hold, which sorts in time
// order; they come back equal and in UTC; and the formats River, goose and
// SQLite itself write are read too.
func TestSQLiteTimes(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	createTables(t, s, &event{})
	base := time.Date(2026, 12, 1, 20, 43, 29, 0, time.UTC)
	seen := base.Add(time.Hour)
	// Listed in time order; ids in another order, so that ORDER BY id
	// differs from ORDER BY at.
	events := []event{
		{ID: 3, At: base, SeenAt: &seen},
		{ID: 1, At: base.Add(100 * time.Millisecond)},
		{ID: 4, At: base.Add(120 * time.Millisecond)},
		{ID: 2, At: base.Add(time.Second + 123456789)},
	}
	err := s.Write(ctx, func(tx *gorm.DB) error { return tx.Create(slices.Clone(events)).Error })
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	if err := s.DB(ctx).Raw("SELECT at || '' FROM events ORDER BY at").Scan(&stored).Error; err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2026-12-01 20:43:29+00:00",
		"2026-12-01 20:43:29.1+00:00",
		"2026-12-01 20:43:29.12+00:00",
		"2026-12-01 20:43:30.123456789+00:00",
	}
	if !slices.Equal(stored, want) {
		t.Errorf("stored times, ORDER BY at: %q; want %q", stored, want)
	}
	var got []event
	if err := s.DB(ctx).Order("at").Find(&got).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(events) {
		t.Fatalf("read %d events; want %d", len(got), len(events))
	}
	for i, e := range got {
		if e.ID != events[i].ID || !e.At.Equal(events[i].At) || e.At.Location() != time.UTC {
			t.Errorf("event %d: read %d at %v (%v); want %d at %v in UTC", i, e.ID, e.At, e.At.Location(), events[i].ID, events[i].At)
		}
	}
	if got[0].SeenAt == nil || !got[0].SeenAt.Equal(seen) || got[1].SeenAt != nil {
		t.Errorf("SeenAt read as %v and %v; want %v and nil", got[0].SeenAt, got[1].SeenAt, seen)
	}

	// River writes "2006-01-02 15:04:05.000", goose and CURRENT_TIMESTAMP
	// "2006-01-02 15:04:05", without an offset: UTC.
	err = s.Write(ctx, func(tx *gorm.DB) error {
		return tx.Exec("INSERT INTO events (id, at, seen_at) VALUES (10, '2026-12-01 20:43:29.123', CURRENT_TIMESTAMP)").Error
	})
	if err != nil {
		t.Fatal(err)
	}
	var other event
	if err := s.DB(ctx).Take(&other, 10).Error; err != nil {
		t.Fatal(err)
	}
	if want := base.Add(123 * time.Millisecond); !other.At.Equal(want) || other.SeenAt == nil || other.SeenAt.Location() != time.UTC || time.Since(*other.SeenAt) > time.Hour {
		t.Errorf("read %v and %v; want %v and about now, in UTC", other.At, other.SeenAt, want)
	}
}

// TestSQLiteStoreStatements: GORM's statements through the Store are
// kept prepared by its connections (see TestSQLiteConnStatementCache), at
// most db.ConnStmtCacheSize on each, while every query, in transactions or
// not and from many goroutines, with more variants than a connection
// keeps, returns what it should; and one that cannot be prepared reports
// its error every time.
func TestSQLiteStoreStatements(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	createTables(t, s, &counter{})
	if err := s.Write(ctx, func(tx *gorm.DB) error { return tx.Create(&counter{ID: 1}).Error }); err != nil {
		t.Fatal(err)
	}
	const common = "SELECT value FROM counters WHERE id = ?"
	read := func(variant int) error {
		var got, value int
		err := s.DB(ctx).Raw(fmt.Sprintf("SELECT value + %d FROM counters WHERE id = ?", variant), 1).Scan(&got).Error
		if err != nil {
			return err
		}
		if err := s.DB(ctx).Raw(common, 1).Scan(&value).Error; err != nil {
			return err
		}
		// A write may come in between: the counter only grows.
		if got < variant || got > value+variant {
			return fmt.Errorf("variant %d read %d; want %d or a little less", variant, got, value+variant)
		}
		return nil
	}

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2 * db.ConnStmtCacheSize {
				variant := (i*7 + g) % (db.ConnStmtCacheSize + 50)
				for range 2 {
					if err := read(variant); err != nil {
						t.Error(err)
						return
					}
				}
				if i%16 == 0 {
					err := s.Write(ctx, func(tx *gorm.DB) error {
						return tx.Model(&counter{}).Where("id = ?", 1).Update("value", gorm.Expr("value + ?", 1)).Error
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	var c counter
	if err := s.DB(ctx).Take(&c, 1).Error; err != nil {
		t.Fatal(err)
	}
	if want := 4 * (2 * db.ConnStmtCacheSize / 16); c.Value != want {
		t.Errorf("counter = %d; want %d", c.Value, want)
	}

	// Hold every open connection at once to look at each one's cache.
	pool := db.SQLDB(s)
	var cachedCommon bool
	for range pool.Stats().OpenConnections {
		conn, err := pool.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := conn.Close(); err != nil {
				t.Error(err)
			}
		}()
		qs, err := db.CachedStatements(conn)
		if err != nil {
			t.Fatal(err)
		}
		if len(qs) > db.ConnStmtCacheSize {
			t.Errorf("a connection keeps %d statements; want at most %d", len(qs), db.ConnStmtCacheSize)
		}
		cachedCommon = cachedCommon || slices.Contains(qs, common)
	}
	if !cachedCommon {
		t.Errorf("no connection keeps %q, run %d times, prepared", common, 8*db.ConnStmtCacheSize)
	}

	for range 3 {
		err := s.Write(ctx, func(tx *gorm.DB) error { return tx.Exec("UPDATE no_such_table SET x = 1").Error })
		if err == nil || !strings.Contains(err.Error(), "no_such_table") {
			t.Fatalf("a statement on a missing table: error %v; want one naming the table", err)
		}
	}
}

// TestSQLiteConnStatementCache: a connection keeps a query prepared from
// its second prepare on (database/sql prepares every query with arguments
// that is not a *sql.Stmt, as River's are), at most db.ConnStmtCacheSize
// of them; a cached statement runs right after one of its executions
// failed, while it is in use by open rows, and after the cache dropped it;
// and the pool closes cleanly with statements cached.
func TestSQLiteConnStatementCache(t *testing.T) {
	ctx := t.Context()
	pool, err := db.OpenSQLitePool(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	pool.SetMaxOpenConns(1)
	conn, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cached := func() []string {
		t.Helper()
		qs, err := db.CachedStatements(conn)
		if err != nil {
			t.Fatal(err)
		}
		return qs
	}
	exec := func(query string, args ...any) error {
		_, err := conn.ExecContext(ctx, query, args...)
		return err
	}
	if err := exec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	insert := "INSERT INTO kv (k, v) VALUES (?, ?)"
	if err := exec(insert, 1, "one"); err != nil {
		t.Fatal(err)
	}
	if got := cached(); len(got) != 0 {
		t.Errorf("after one execution, cached %q; want none", got)
	}
	if err := exec(insert, 2, "two"); err != nil {
		t.Fatal(err)
	}
	if got := cached(); !slices.Equal(got, []string{insert}) {
		t.Errorf("after two executions, cached %q; want the insert", got)
	}
	if err := exec(insert, 1, "again"); err == nil {
		t.Fatal("inserting a key twice succeeded")
	}
	if err := exec(insert, 3, "three"); err != nil {
		t.Fatalf("the cached insert after a failed execution: %v", err)
	}

	// The same query while its cached statement is lent to open rows.
	sel := "SELECT v FROM kv WHERE k >= ? ORDER BY k"
	var values func(from int) []string
	values = func(from int) []string {
		t.Helper()
		rows, err := conn.QueryContext(ctx, sel, from)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if len(out) == 0 && from == 1 {
				out = append(out, values(3)...)
			}
			out = append(out, v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	values(2)
	if got, want := values(1), []string{"three", "one", "two", "three"}; !slices.Equal(got, want) {
		t.Errorf("nested queries read %q; want %q", got, want)
	}

	// Beyond the cache's size the least recently used are dropped.
	for i := range db.ConnStmtCacheSize + 5 {
		for range 2 {
			var v string
			if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT v FROM kv WHERE k = ? AND %d = %d", i, i), 2).Scan(&v); err != nil || v != "two" {
				t.Fatalf("query %d: %q, %v; want two", i, v, err)
			}
		}
	}
	if got := cached(); len(got) != db.ConnStmtCacheSize || slices.Contains(got, insert) {
		t.Errorf("cached %d statements, the insert among them: %t; want %d without it", len(got), slices.Contains(got, insert), db.ConnStmtCacheSize)
	}
	for k := 4; k < 6; k++ {
		if err := exec(insert, k, "more"); err != nil {
			t.Fatalf("the insert after the cache dropped it: %v", err)
		}
	}
	if got := cached(); got[0] != insert {
		t.Errorf("most recently cached %q; want the insert", got[0])
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Close(); err != nil {
		t.Errorf("closing the pool with statements cached: %v", err)
	}
}

// TestSQLiteFileNames: file names that a URI must escape open the file of
// that name.
func TestSQLiteFileNames(t *testing.T) {
	dir := t.TempDir()
	const name = "my db %41 #1.db"
	s := openStore(t, "sqlite://"+filepath.Join(dir, "my%20db%20%2541%20%231.db"))
	if _, err := s.MigrateUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		t.Errorf("no file %q: %v", name, err)
	}
}

// TestSQLiteSchemaChangedUnderConnection: a connection busy while the
// schema changes keeps the old one, and its next "SELECT *" fails once with
// an error that says so (not the driver's bare "bad parameter or other API
// misuse"); run again, the query has the new columns.
func TestSQLiteSchemaChangedUnderConnection(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, legacyDatabase(t, parleytest.Backend{Name: db.DialectSQLite}))
	pool, err := s.DB(ctx).DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	columns := func() ([]string, error) {
		rows, err := conn.QueryContext(ctx, "SELECT * FROM users")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return nil, err
		}
		for rows.Next() {
		}
		return cols, rows.Err()
	}
	before, err := columns()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := columns(); err == nil || !strings.Contains(err.Error(), "schema changed") {
		t.Errorf("first SELECT * after the schema changed: %v, want an error saying the schema changed", err)
	}
	after, err := columns()
	if err != nil || len(after) <= len(before) {
		t.Errorf("run again: columns %v, %v; want more than %v", after, err, before)
	}
}
