package db_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/parleychat/parley/db"
)

// TestQueueDBQueuesWithWriters: on SQLite, a transaction or a statement of
// the queue's pool and a Write wait for each other in Go, on one lock,
// each as long as its context allows.
func TestQueueDBQueuesWithWriters(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "queue.db"))
	q, err := s.QueueDB()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.ExecContext(ctx, "CREATE TABLE jobs (id integer PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.Write(short, func(*gorm.DB) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write while a queue transaction runs: %v; want %v", err, context.DeadlineExceeded)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO jobs (id) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Write(ctx, func(tx *gorm.DB) error {
			close(entered)
			<-release
			return tx.Exec("INSERT INTO jobs (id) VALUES (2)").Error
		})
	}()
	<-entered
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := q.ExecContext(short, "INSERT INTO jobs (id) VALUES (3)"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queue statement while a Write runs: %v; want %v", err, context.DeadlineExceeded)
	}
	if _, err := q.BeginTx(short, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queue transaction while a Write runs: %v; want %v", err, context.DeadlineExceeded)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var n int
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM jobs").Scan(&n); err != nil || n != 2 {
		t.Errorf("jobs: %d, %v; want 2", n, err)
	}
}

// TestQueueDBUnderLoad: writers of both pools at once all succeed, none
// meeting SQLite's busy lock, and a Write that inserts through its own
// transaction (SQLTx) while queue statements run does not wait for itself.
func TestQueueDBUnderLoad(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "load.db"))
	q, err := s.QueueDB()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.ExecContext(ctx, "CREATE TABLE jobs (id integer PRIMARY KEY AUTOINCREMENT, src text)"); err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 25
	errs := make(chan error, 3*goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				errs <- s.Write(ctx, func(tx *gorm.DB) error {
					sqlTx, err := db.SQLTx(tx)
					if err != nil {
						return err
					}
					_, err = sqlTx.ExecContext(ctx, "INSERT INTO jobs (src) VALUES ('write')")
					return err
				})
			}
		})
		wg.Go(func() {
			for range each {
				tx, err := q.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					continue
				}
				_, err = tx.ExecContext(ctx, "UPDATE jobs SET src = 'queue' WHERE id IN (SELECT id FROM jobs ORDER BY id DESC LIMIT 1)")
				errs <- errors.Join(err, tx.Commit())
			}
		})
		wg.Go(func() {
			for range each {
				rows, err := q.QueryContext(ctx, "INSERT INTO jobs (src) VALUES ('queue') RETURNING id")
				if err == nil {
					for rows.Next() {
					}
					err = errors.Join(rows.Err(), rows.Close())
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM jobs").Scan(&n); err != nil || n != 2*goroutines*each {
		t.Errorf("jobs: %d, %v; want %d", n, err, 2*goroutines*each)
	}
}

// TestSQLTxOutsideTransaction: SQLTx refuses a handle that is not a
// transaction's.
func TestSQLTxOutsideTransaction(t *testing.T) {
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "tx.db"))
	if _, err := db.SQLTx(s.DB(t.Context())); err == nil {
		t.Error("SQLTx accepted a handle outside a transaction")
	}
}
