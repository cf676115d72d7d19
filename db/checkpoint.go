package db

import (
	"context"
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

// checkpointer copies a SQLite Store's write-ahead log into the database
// file every checkpointInterval, from a goroutine of its own and on a
// connection that holds no write lock (PRAGMA wal_checkpoint(PASSIVE),
// which waits for no reader or writer).
//
// SQLite's default is to checkpoint on the path of the commit that grows
// the log past 1,000 pages: that commit copies the pages and syncs the
// database file while it still holds the write lock, and every writer
// queued behind it waits. With the commits' path left to appending to the
// log, 16 writers sending messages with client ids and mentions went from
// 1,439–1,829 to 1,811–2,856 sendMessage/s and their p90 from 20–25 ms to
// 8–14 ms on one core (BENCHMARKS.md, round 8). The copying still takes that core
// from the writers for a while: a longer interval copies a page rewritten
// many times once, but in longer stretches (1 s gave a p99.9 over 100 ms).
type checkpointer struct {
	stop, done chan struct{}
	stopOnce   sync.Once
}

// startCheckpointer starts s's checkpointer; stopCheckpointer ends it.
func (s *Store) startCheckpointer(log *slog.Logger) {
	c := &checkpointer{stop: make(chan struct{}), done: make(chan struct{})}
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
}

// stopCheckpointer ends s's checkpointer and waits for it, if it runs;
// it may be called more than once.
func (s *Store) stopCheckpointer() {
	if c := s.checkpointer; c != nil {
		c.stopOnce.Do(func() { close(c.stop) })
		<-c.done
	}
}

// checkpoint copies into the database file the pages of the write-ahead
// log that no reader still needs.
func (s *Store) checkpoint(ctx context.Context) error {
	_, err := s.sqlDB.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	s.checkpoints.Add(1)
	return err
}
