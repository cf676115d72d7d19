package db_test

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/parleychat/parley/db"
)

// walRow and walTally are a table that commits add to and a counter that
// the same commits keep equal to its row count.
type walRow struct {
	ID   uint `gorm:"primaryKey"`
	Data []byte
}

type walTally struct {
	ID uint `gorm:"primaryKey"`
	N  int
}

// TestWALFileCommitsReachReaders: with each frame's header held until its
// page (walVFSName), every commit is in the file before readers on other
// connections can see it, from its first page to its last. Readers check
// in one statement, so on one snapshot, that the counter equals the rows,
// while commits go on; a transaction larger than the page cache (its pages
// spill into the log before the commit) and a reopened database read back
// whole.
func TestWALFileCommitsReachReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	s := openStore(t, "sqlite://"+path)
	ctx := t.Context()
	createTables(t, s, &walRow{}, &walTally{})
	if err := s.Write(ctx, func(tx *gorm.DB) error { return tx.Create(&walTally{ID: 1}).Error }); err != nil {
		t.Fatal(err)
	}
	const commits = 300
	page := bytes.Repeat([]byte{'p'}, 3000) // about a page per row
	var done sync.WaitGroup
	stop := make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	for range 4 {
		g.Go(func() error {
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				var got struct{ Rows, N int }
				err := s.DB(gctx).Raw("SELECT (SELECT COUNT(*) FROM wal_rows) AS rows, (SELECT n FROM wal_tallies WHERE id = 1) AS n").Scan(&got).Error
				if err != nil {
					return err
				}
				if got.Rows != got.N {
					t.Errorf("a reader saw %d rows and a tally of %d", got.Rows, got.N)
					return nil
				}
			}
		})
	}
	done.Go(func() {
		defer close(stop)
		for i := range commits {
			err := s.Write(ctx, func(tx *gorm.DB) error {
				rows := []walRow{{Data: page}, {Data: page}}
				if err := tx.Create(&rows).Error; err != nil {
					return err
				}
				return tx.Model(&walTally{ID: 1}).Update("n", gorm.Expr("n + 2")).Error
			})
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
				return
			}
		}
	})
	done.Wait()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	big := make([]walRow, 1000) // 3 MB, past the 2 MB page cache
	for i := range big {
		big[i].Data = page
	}
	if err := s.Write(ctx, func(tx *gorm.DB) error { return tx.CreateInBatches(big, 100).Error }); err != nil {
		t.Fatal(err)
	}
	want := int64(2*commits + len(big))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, "sqlite://"+path)
	var n, size int64
	if err := s.DB(ctx).Raw("SELECT COUNT(*), SUM(LENGTH(data)) FROM wal_rows").Row().Scan(&n, &size); err != nil {
		t.Fatal(err)
	}
	if n != want || size != want*int64(len(page)) {
		t.Errorf("reopened: %d rows of %d bytes in all; want %d of %d", n, size, want, want*int64(len(page)))
	}
}

// TestWALFileRollbackAfterSpill: a transaction whose pages spilled into the
// log and then rolled back leaves nothing of its own to be written later.
// Another connection commits at the same place in the log meanwhile, and
// the first connection's next commit must not bring the abandoned frames
// back over it.
func TestWALFileRollbackAfterSpill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	s := openStore(t, "sqlite://"+path)
	createTables(t, s, &walRow{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pool, err := db.OpenSQLitePool(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := t.Context()
	first, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	exec := func(c *sql.Conn, q string, args ...any) {
		t.Helper()
		if _, err := c.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	page := bytes.Repeat([]byte{'a'}, 3000)
	exec(first, "BEGIN IMMEDIATE")
	for range 1000 { // 3 MB: the 2 MB page cache spills into the log
		exec(first, "INSERT INTO wal_rows (data) VALUES (?)", page)
	}
	exec(first, "ROLLBACK")
	exec(second, "BEGIN IMMEDIATE")
	for range 20 {
		exec(second, "INSERT INTO wal_rows (data) VALUES (?)", bytes.Repeat([]byte{'b'}, 3000))
	}
	exec(second, "COMMIT")
	exec(first, "INSERT INTO wal_rows (data) VALUES (?)", []byte("c"))

	var check string
	if err := second.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		t.Fatal(err)
	}
	if check != "ok" {
		t.Fatalf("integrity_check: %s", check)
	}
	var as, bs, cs int
	err = second.QueryRowContext(ctx, "SELECT COUNT(CASE WHEN hex(substr(data, 1, 1)) = '61' THEN 1 END), COUNT(CASE WHEN hex(substr(data, 1, 1)) = '62' THEN 1 END), COUNT(CASE WHEN hex(data) = '63' THEN 1 END) FROM wal_rows").Scan(&as, &bs, &cs)
	if err != nil {
		t.Fatal(err)
	}
	if as != 0 || bs != 20 || cs != 1 {
		t.Errorf("rows: %d rolled back, %d of the second connection, %d of the first's last commit; want 0, 20, 1", as, bs, cs)
	}
}
