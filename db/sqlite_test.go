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

// TestSQLiteStatementCache: statements run more than once are kept
// prepared, at most db.StmtCacheSize of them, while every query, in
// transactions or not and from many goroutines, returns what it should, and
// one that cannot be prepared reports its error every time.
func TestSQLiteStatementCache(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	createTables(t, s, &counter{})
	if err := s.Write(ctx, func(tx *gorm.DB) error { return tx.Create(&counter{ID: 1}).Error }); err != nil {
		t.Fatal(err)
	}
	read := func(variant int) error {
		var got, value int
		err := s.DB(ctx).Raw(fmt.Sprintf("SELECT value + %d FROM counters WHERE id = ?", variant), 1).Scan(&got).Error
		if err != nil {
			return err
		}
		if err := s.DB(ctx).Raw("SELECT value FROM counters WHERE id = ?", 1).Scan(&value).Error; err != nil {
			return err
		}
		// A write may come in between: the counter only grows.
		if got < variant || got > value+variant {
			return fmt.Errorf("variant %d read %d; want %d or a little less", variant, got, value+variant)
		}
		return nil
	}
	before := db.PreparedStatements(s)
	for range 2 {
		if err := read(0); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.PreparedStatements(s); n <= before {
		t.Errorf("after running a statement twice, %d statements are prepared; want more than %d", n, before)
	}

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2 * db.StmtCacheSize {
				variant := (i*7 + g) % (db.StmtCacheSize + 50)
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
	if n := db.PreparedStatements(s); n > db.StmtCacheSize {
		t.Errorf("%d statements are prepared; want at most %d", n, db.StmtCacheSize)
	}
	var c counter
	if err := s.DB(ctx).Take(&c, 1).Error; err != nil {
		t.Fatal(err)
	}
	if want := 4 * (2 * db.StmtCacheSize / 16); c.Value != want {
		t.Errorf("counter = %d; want %d", c.Value, want)
	}

	for range 3 {
		err := s.Write(ctx, func(tx *gorm.DB) error { return tx.Exec("UPDATE no_such_table SET x = 1").Error })
		if err == nil || !strings.Contains(err.Error(), "no_such_table") {
			t.Fatalf("a statement on a missing table: error %v; want one naming the table", err)
		}
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
