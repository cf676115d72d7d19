package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// checkpointInterval is how often a SQLite Store copies the pages its
// write-ahead log gained into the database file.
const checkpointInterval = 100 * time.Millisecond

// walAutoCheckpointPages is SQLite's own checkpoint threshold, in pages of
// the write-ahead log, left as a safety net under the checkpointer: a
// commit that grows the log past it checkpoints on the commit's path.
const walAutoCheckpointPages = 16000

// checkpointParams is the query part of the checkpointer's DSN: it runs
// nothing but the checkpoint, which waits for no lock, through
// the background VFS (backgroundVFSName).
const checkpointParams = "_pragma=busy_timeout(10000)&vfs=" + backgroundVFSName

// checkpointer copies a SQLite Store's write-ahead log into the database
// file every checkpointInterval, from a goroutine of its own and on a
// connection of its own that holds no write lock (PRAGMA
// wal_checkpoint(PASSIVE), which waits for no reader or writer).
//
// The connection is not one of the Store's pool: a checkpoint reads the
// schema, and a pool connection that read it while MigrateUp changed it
// would prepare the next "SELECT *" with the old columns.
//
// SQLite's default is to checkpoint on the path of the commit that grows
// the log past 1,000 pages: that commit copies the pages and syncs the
// database file while it still holds the write lock, and every writer
// queued behind it waits. With the commits' path left to appending to the
// log, 16 writers sending messages with client ids and mentions went from
// 1,439–1,829 to 1,811–2,856 sendMessage/s and their p90 from 20–25 ms to
// 8–14 ms on one core (BENCHMARKS.md, round 8). The connection works
// through the background VFS, which yields the processor between pages and
// syncs through kernel AIO, so that a checkpoint no longer stops the
// requests while it copies and the disk flushes (round 12). A longer
// interval copies a page rewritten many times once, but each checkpoint
// then flushes more at once (1 s gave a p99.9 over 100 ms).
type checkpointer struct {
	conn       driver.ExecerContext
	closeConn  func() error
	stop, done chan struct{}
	stopOnce   sync.Once
	closeErr   error
}

// startCheckpointer opens the checkpointer's connection to the SQLite file
// at s.target and starts it; stopCheckpointer ends it.
func (s *Store) startCheckpointer(ctx context.Context, log *slog.Logger) error {
	connector, err := newSQLiteConnector(s.target, checkpointParams)
	if err != nil {
		return fmt.Errorf("open checkpoint connection: %w", err)
	}
	conn, err := connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("open checkpoint connection: %w", err)
	}
	execer, ok := conn.(driver.ExecerContext)
	if !ok {
		return errors.Join(fmt.Errorf("checkpoint connection: %T runs no statements", conn), conn.Close())
	}
	c := &checkpointer{conn: execer, closeConn: conn.Close, stop: make(chan struct{}), done: make(chan struct{})}
	s.checkpointer = c
	go func() {
		defer close(c.done)
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		failing := false // logged once per run of failures
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			err := s.checkpoint(context.Background())
			if err != nil && !failing {
				log.Warn("sqlite checkpoint failed; commits checkpoint when the log grows past the safety net", "err", err, "pages", walAutoCheckpointPages)
			}
			failing = err != nil
		}
	}()
	return nil
}

// stopCheckpointer ends s's checkpointer, if it runs, waits for it and
// closes its connection; it may be called more than once and returns the
// close's error each time.
func (s *Store) stopCheckpointer() error {
	c := s.checkpointer
	if c == nil {
		return nil
	}
	c.stopOnce.Do(func() {
		close(c.stop)
		<-c.done
		c.closeErr = c.closeConn()
	})
	return c.closeErr
}

// checkpoint copies into the database file the pages of the write-ahead
// log that no reader still needs. Only the checkpointer's goroutine calls
// it: the connection is its alone.
func (s *Store) checkpoint(ctx context.Context) error {
	_, err := s.checkpointer.conn.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)", nil)
	s.checkpoints.Add(1)
	return err
}
