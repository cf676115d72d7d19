package db_test

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"
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

// TestWALFileCommitsReachReaders: the log's writes are gathered per commit
// (walVFSName), and yet every commit is in the file before readers on other
// connections can see it, from its first page to its last. Readers check
// in one statement, so on one snapshot, that the counter equals the rows,
// while commits go on; a transaction larger than the gathering buffer and
// a reopened database read back whole.
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

	big := make([]walRow, 800) // 800 rows of 3,000 bytes: past walBufferLimit
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
