package db_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/internal/aiosync"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/parleytest"
)

type item struct {
	ID   uint `gorm:"primaryKey"`
	Name string
}

type counter struct {
	ID    uint `gorm:"primaryKey"`
	Value int
}

// backend is one database the tests run against.
type backend struct {
	name  string
	url   string // opens another Store on the same database
	store *db.Store
}

// openStores returns a store on a fresh SQLite database and, if
// TEST_DATABASE_URL is set, one on a fresh PostgreSQL schema, both migrated
// and closed when the test ends.
func openStores(t *testing.T) []backend {
	t.Helper()
	var out []backend
	for _, b := range parleytest.Backends() {
		url := b.NewURL(t)
		s := openStore(t, url)
		if _, err := s.MigrateUp(t.Context()); err != nil {
			t.Fatalf("MigrateUp: %v", err)
		}
		out = append(out, backend{name: b.Name, url: url, store: s})
	}
	return out
}

// createTables creates the tables of test-only models.
func createTables(t *testing.T, s *db.Store, models ...any) {
	t.Helper()
	if err := s.DB(t.Context()).Migrator().CreateTable(models...); err != nil {
		t.Fatalf("create tables: %v", err)
	}
}

// openStore opens url and closes the store when the test ends.
func openStore(t *testing.T, url string) *db.Store {
	t.Helper()
	s, err := db.Open(t.Context(), url, nil)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url         string
		wantDialect string
		wantTarget  string
		wantErr     string // substring of the error; "" for success
	}{
		{url: "", wantDialect: "sqlite", wantTarget: "parley.db"},
		{url: "postgres://u@h/d", wantDialect: "postgres", wantTarget: "postgres://u@h/d"},
		{url: "postgresql://u:p@h:5432/d?sslmode=disable", wantDialect: "postgres", wantTarget: "postgresql://u:p@h:5432/d?sslmode=disable"},
		{url: "sqlite:///abs/path.db", wantDialect: "sqlite", wantTarget: "/abs/path.db"},
		{url: "sqlite://rel.db", wantDialect: "sqlite", wantTarget: "rel.db"},
		{url: "sqlite://data/parley.db", wantDialect: "sqlite", wantTarget: "data/parley.db"},
		{url: "sqlite:///tmp/my%20db.db", wantDialect: "sqlite", wantTarget: "/tmp/my db.db"},
		{url: "file:rel.db", wantDialect: "sqlite", wantTarget: "rel.db"},
		{url: "file:/abs/path.db", wantDialect: "sqlite", wantTarget: "/abs/path.db"},
		{url: "file:///abs/path.db", wantDialect: "sqlite", wantTarget: "/abs/path.db"},
		{url: "file://localhost/abs/path.db", wantDialect: "sqlite", wantTarget: "/abs/path.db"},
		{url: "sqlite://:memory:", wantErr: "in-memory SQLite is not supported"},
		{url: "file::memory:", wantErr: "in-memory SQLite is not supported"},
		{url: "sqlite://x.db?mode=memory", wantErr: "no query string"},
		{url: "file:x.db?cache=shared", wantErr: "no query string"},
		{url: "sqlite://x.db#frag", wantErr: "no query string or fragment"},
		{url: "sqlite://x%3F.db", wantErr: "containing '?'"},
		{url: "sqlite://%zz", wantErr: "invalid URL escape"},
		{url: "sqlite://file:x.db", wantErr: "not both"},
		{url: "sqlite://", wantErr: "names no file"},
		{url: "file:", wantErr: "names no file"},
		{url: "file://", wantErr: "names no file"},
		{url: "file://otherhost/x.db", wantErr: `not host "otherhost"`},
		{url: "sqlite:rel.db", wantErr: `unsupported database URL scheme "sqlite"`},
		{url: "mysql://u:hunter2@h/d", wantErr: `unsupported database URL scheme "mysql"; accepted forms: "" (SQLite file parley.db), postgres://…, postgresql://…, sqlite://PATH or file:PATH`},
		{url: "parley.db", wantErr: `unsupported database URL "parley.db"`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			dialect, target, err := db.ParseURL(tt.url)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %q, %q; want error containing %q", tt.url, dialect, target, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURL(%q) error = %q; want it to contain %q", tt.url, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("ParseURL(%q) error %q reveals the password", tt.url, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if dialect != tt.wantDialect || target != tt.wantTarget {
				t.Fatalf("ParseURL(%q) = %q, %q; want %q, %q", tt.url, dialect, target, tt.wantDialect, tt.wantTarget)
			}
		})
	}
}

func TestOpenSQLiteFiles(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct{ url, file string }{
		{url: "", file: "parley.db"},
		{url: "sqlite://rel.db", file: "rel.db"},
		{url: "sqlite://" + filepath.Join(dir, "abs.db"), file: "abs.db"},
		{url: "file:" + filepath.Join(dir, "uri.db"), file: "uri.db"},
	} {
		s := openStore(t, tc.url)
		if got := s.Dialect(); got != db.DialectSQLite {
			t.Errorf("Open(%q).Dialect() = %q; want %q", tc.url, got, db.DialectSQLite)
		}
		if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
			t.Errorf("Open(%q) did not create %s: %v", tc.url, tc.file, err)
		}
	}
}

// TestSQLiteCheckpointer: what commits append to the write-ahead log
// reaches the database file without a commit growing the log past the
// safety net (wal_autocheckpoint, checked in TestOpenSQLitePragmas): the
// Store's checkpointer copies it, off the commits' path. Where the kernel
// has AIO, the checkpointer's syncs after each file's first go through it
// (the background VFS), and a reopened Store reads every row.
func TestSQLiteCheckpointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	s := openStore(t, "sqlite://"+path)
	ctx := t.Context()
	createTables(t, s, &event{})
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	syncs := db.BackgroundSyncs()
	for round := range 2 {
		before := size()
		err := s.Write(ctx, func(tx *gorm.DB) error {
			events := make([]event, 2000)
			for i := range events {
				id := round*len(events) + i + 1
				events[i] = event{ID: uint(id), At: time.Unix(int64(id), 0)}
			}
			return tx.CreateInBatches(events, 500).Error
		})
		if err != nil {
			t.Fatal(err)
		}
		checkpoints := db.Checkpoints(s)
		deadline := time.Now().Add(10 * time.Second)
		for size() <= before {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the database file is still %d bytes 10 s after a commit, after %d checkpoints", round, before, db.Checkpoints(s)-checkpoints)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if a, err := aiosync.New(); err == nil {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if db.BackgroundSyncs() == syncs {
			t.Error("the checkpoints synced no file through AIO")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, "sqlite://"+path)
	var n int64
	if err := s.DB(ctx).Model(&event{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 4000 {
		t.Errorf("reopened: %d rows; want 4000", n)
	}
}

func TestOpenSQLitePragmas(t *testing.T) {
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "p.db"))
	ctx := t.Context()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"busy_timeout": "10000",
		"synchronous":  "1", // NORMAL
		"foreign_keys": "1",
		// The checkpointer copies the log; commits only past this.
		"wal_autocheckpoint": strconv.Itoa(db.WALAutoCheckpointPages),
	} {
		var got string
		if err := s.DB(ctx).Raw("PRAGMA " + pragma).Scan(&got).Error; err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q; want %q", pragma, got, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")
	for url, want := range map[string]string{
		"sqlite://:memory:":   "in-memory SQLite is not supported",
		"sqlite://" + missing: "open sqlite " + missing,
		"redis://localhost/0": `unsupported database URL scheme "redis"`,
		"postgres://u:p@[::1": "parse postgres URL",
	} {
		s, err := db.Open(t.Context(), url, nil)
		if err == nil {
			if cerr := s.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
			t.Errorf("Open(%q) succeeded; want error containing %q", url, want)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) error = %q; want it to contain %q", url, err, want)
		}
	}
}

func TestSecret(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			const key = "test"

			calls := 0
			generate := func() ([]byte, error) {
				calls++
				return []byte("first value"), nil
			}
			got, err := b.store.Secret(ctx, key, generate)
			if err != nil {
				t.Fatalf("Secret: %v", err)
			}
			if string(got) != "first value" || calls != 1 {
				t.Fatalf("Secret = %q after %d generate calls; want %q after 1", got, calls, "first value")
			}
			got, err = b.store.Secret(ctx, key, generate)
			if err != nil {
				t.Fatalf("Secret again: %v", err)
			}
			if string(got) != "first value" || calls != 1 {
				t.Fatalf("Secret again = %q after %d generate calls; want %q after 1", got, calls, "first value")
			}

			other := openStore(t, b.url)
			got, err = other.Secret(ctx, key, func() ([]byte, error) {
				return []byte("other value"), nil
			})
			if err != nil {
				t.Fatalf("Secret from a second Store: %v", err)
			}
			if string(got) != "first value" {
				t.Fatalf("Secret from a second Store = %q; want %q", got, "first value")
			}
		})
	}
}

func TestSecretErrors(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			const key = "test-err"
			boom := errors.New("no entropy")
			_, err := b.store.Secret(ctx, key, func() ([]byte, error) { return nil, boom })
			if !errors.Is(err, boom) {
				t.Errorf("Secret with failing generate: error = %v; want %v", err, boom)
			}
			_, err = b.store.Secret(ctx, key, func() ([]byte, error) { return nil, nil })
			if err == nil || !strings.Contains(err.Error(), "empty value") {
				t.Errorf("Secret with empty generate: error = %v; want an empty value error", err)
			}
			_, err = b.store.Secret(ctx, "", func() ([]byte, error) { return []byte("x"), nil })
			if err == nil {
				t.Errorf("Secret with empty key succeeded; want error")
			}
		})
	}
}

// TestSecretConcurrentFirstCalls races first calls from two Stores on the
// same database; all must return the one value stored.
func TestSecretConcurrentFirstCalls(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			const key = "test-race"
			stores := []*db.Store{b.store, openStore(t, b.url)}
			const perStore = 10
			results := make([][]byte, 2*perStore)
			errs := make([]error, 2*perStore)
			var wg sync.WaitGroup
			for i := range results {
				wg.Go(func() {
					results[i], errs[i] = stores[i%2].Secret(ctx, key, func() ([]byte, error) {
						return []byte(fmt.Sprintf("value from caller %d", i)), nil
					})
				})
			}
			wg.Wait()
			for i := range results {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if !bytes.Equal(results[i], results[0]) {
					t.Fatalf("caller %d got %q, caller 0 got %q; want one value", i, results[i], results[0])
				}
			}
		})
	}
}

func TestWriteRollsBack(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s := b.store
			createTables(t, s, &item{})
			sentinel := errors.New("changed my mind")
			err := s.Write(ctx, func(tx *gorm.DB) error {
				if err := tx.Create(&item{Name: "returned"}).Error; err != nil {
					return err
				}
				return sentinel
			})
			if !errors.Is(err, sentinel) {
				t.Fatalf("Write error = %v; want %v", err, sentinel)
			}

			func() {
				defer func() {
					if r := recover(); r != "boom" {
						t.Errorf("recovered %v; want the panic of fn", r)
					}
				}()
				err = s.Write(ctx, func(tx *gorm.DB) error {
					if err := tx.Create(&item{Name: "panicked"}).Error; err != nil {
						return err
					}
					panic("boom")
				})
				t.Errorf("Write returned %v; want it to re-panic", err)
			}()

			// The writer lock must have been released by both.
			err = s.Write(ctx, func(tx *gorm.DB) error {
				return tx.Create(&item{Name: "kept"}).Error
			})
			if err != nil {
				t.Fatalf("Write after rollbacks: %v", err)
			}
			var names []string
			if err := s.DB(ctx).Model(&item{}).Pluck("name", &names).Error; err != nil {
				t.Fatalf("read items: %v", err)
			}
			if len(names) != 1 || names[0] != "kept" {
				t.Errorf("items = %q; want only %q", names, "kept")
			}
		})
	}
}

func TestWriteWaitHonoursContext(t *testing.T) {
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "ctx.db"))
	entered := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Write(context.Background(), func(*gorm.DB) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := s.Write(ctx, func(*gorm.DB) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write while another writer holds the lock: error = %v; want %v", err, context.DeadlineExceeded)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first Write: %v", err)
	}
}

// incrementConcurrently runs goroutines×perGoroutine Write transactions over
// stores (round robin), each reading the counter and writing it back plus
// one, and checks the final count.
func incrementConcurrently(t *testing.T, stores []*db.Store, goroutines, perGoroutine int) {
	t.Helper()
	ctx := t.Context()
	s := stores[0]
	createTables(t, s, &counter{})
	if err := s.Write(ctx, func(tx *gorm.DB) error { return tx.Create(&counter{ID: 1}).Error }); err != nil {
		t.Fatalf("create counter: %v", err)
	}
	errs := make(chan error, goroutines*perGoroutine)
	var wg sync.WaitGroup
	for g := range goroutines {
		store := stores[g%len(stores)]
		wg.Go(func() {
			for range perGoroutine {
				errs <- store.Write(ctx, func(tx *gorm.DB) error {
					var c counter
					// FOR UPDATE matters on PostgreSQL; on SQLite the
					// immediate transaction already excludes other writers.
					if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&c, 1).Error; err != nil {
						return err
					}
					return tx.Model(&c).Update("value", c.Value+1).Error
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed <= 3 {
				t.Errorf("Write: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d writes failed", failed, goroutines*perGoroutine)
	}
	var c counter
	if err := s.DB(ctx).Take(&c, 1).Error; err != nil {
		t.Fatalf("read counter: %v", err)
	}
	if want := goroutines * perGoroutine; c.Value != want {
		t.Fatalf("counter = %d; want %d", c.Value, want)
	}
}

func TestWriteConcurrent(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			incrementConcurrently(t, []*db.Store{b.store}, 50, 20)
		})
	}
}

// TestWriteConcurrentTwoStores is TestWriteConcurrent with two Stores on one
// database, as two processes would have: their writers meet only in the
// database, which on SQLite means busy_timeout and BEGIN IMMEDIATE.
func TestWriteConcurrentTwoStores(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			incrementConcurrently(t, []*db.Store{b.store, openStore(t, b.url)}, 20, 20)
		})
	}
}

func TestPingAndClose(t *testing.T) {
	for _, b := range openStores(t) {
		t.Run(b.name, func(t *testing.T) {
			if err := b.store.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			s, err := db.Open(t.Context(), b.url, nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got := s.Dialect(); got != b.name {
				t.Errorf("Dialect() = %q; want %q", got, b.name)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.Ping(t.Context()); err == nil {
				t.Errorf("Ping after Close succeeded; want error")
			}
		})
	}
}

// TestLogging checks what reaches the slog.Logger: failed statements at
// debug level, no record-not-found, and never a statement's arguments.
func TestLogging(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := db.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "log.db"), logger)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx := t.Context()
	if _, err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("MigrateUp: %v", err)
	}
	if _, err := s.Secret(ctx, "k", func() ([]byte, error) { return []byte("hunter2hunter2"), nil }); err != nil {
		t.Fatalf("Secret: %v", err)
	}
	err = s.DB(ctx).Raw("SELECT * FROM no_such_table WHERE x = ?", "needle-arg").Scan(&[]map[string]any{}).Error
	if err == nil {
		t.Fatalf("query of a missing table succeeded")
	}
	out := buf.String()
	for _, banned := range []string{"aHVudGVyMmh1bnRlcjI", "hunter2", "needle-arg", "record not found", "level=ERROR"} {
		if strings.Contains(out, banned) {
			t.Errorf("log contains %q:\n%s", banned, out)
		}
	}
	if !strings.Contains(out, `level=DEBUG msg="sql failed"`) || !strings.Contains(out, "no_such_table") {
		t.Errorf("log lacks the failed statement at debug level:\n%s", out)
	}
	if !strings.Contains(out, `level=INFO msg="database opened" dialect=sqlite`) {
		t.Errorf("log lacks the open message:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAliasedColumns: a model's columns, qualified by the table and named
// with the prefix, in the model's order, as Columns gives them unaliased.
func TestAliasedColumns(t *testing.T) {
	s := openSQLite(t)
	g := s.DB(t.Context())
	got := db.AliasedColumns(g, &models.User{}, "u", "author_")
	want := "u.id AS author_id, u.identity AS author_identity, u.friendly_name AS author_friendly_name, u.attributes AS author_attributes, " +
		"u.photo_url AS author_photo_url, u.created_at AS author_created_at, u.updated_at AS author_updated_at"
	if got != want {
		t.Errorf("AliasedColumns = %q; want %q", got, want)
	}
	if plain := db.Columns(g, &models.User{}, "u"); !strings.HasPrefix(plain, "u.id, u.identity, ") || strings.Contains(plain, " AS ") {
		t.Errorf("Columns after AliasedColumns = %q; want the same columns, not aliased", plain)
	}
}
