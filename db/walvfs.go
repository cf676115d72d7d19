package db

import (
	"encoding/binary"
	"errors"

	"github.com/ncruces/go-sqlite3/vfs"
)

// walVFSName names, for a SQLite DSN (vfs=parley-wal), the log VFS:
// SQLite's default file system with the writes of a commit to the
// write-ahead log gathered into one pwrite.
// SQLite writes each frame of the log as two writes, its 24-byte header
// and its page, so a send batch that changes 50 pages made 100 system
// calls, 10–15 µs each on this kind of virtual machine (BENCHMARKS.md,
// round 12). A walFile holds consecutive writes in memory and writes them
// at once.
//
// Only the log is wrapped; the database file and the others are the
// default VFS's own. Files, locks and shared memory are the default
// VFS's, so connections through either VFS share the same database.
const walVFSName = "parley-wal"

func init() { vfs.Register(walVFSName, wrappingVFS{vfs.Find(""), wrapWAL}) }

// wrapWAL returns f as a walFile if it is a write-ahead log, else as it is.
func wrapWAL(f vfs.File, flags vfs.OpenFlag) vfs.File {
	if flags&vfs.OPEN_WAL == 0 {
		return f
	}
	return &walFile{passThroughFile: passThroughFile{f}}
}

const (
	// walFrameHeaderSize is the size of a frame's header in the log
	// (https://sqlite.org/fileformat2.html#walformat). Bytes 4–7 of a
	// commit frame's header hold the database's size after the commit;
	// every other frame has zero there.
	walFrameHeaderSize = 24
	// walBufferLimit bounds the bytes a walFile holds: a transaction that
	// writes more (a large import) reaches the file in pieces this size.
	walBufferLimit = 1 << 20
)

// walFile is a write-ahead log opened through the log VFS. It gathers
// writes that follow each other in the file and writes them in one call:
//
//   - when the page of a commit frame has been written, so that the
//     commit is in the file before SQLite publishes it to readers in the
//     shared memory (readers read the frames from the file);
//   - before anything that reads, syncs, sizes, truncates or closes the
//     file, and before a write elsewhere in it;
//   - when it holds walBufferLimit bytes.
//
// Until then a write reports success; an error of the gathered write is
// the error of the call that flushes it, within the same commit, and
// fails the commit as a failed write of any of its frames would. SQLite
// uses a file from one goroutine at a time.
type walFile struct {
	passThroughFile
	buf []byte // bytes not written yet, for the file from off
	off int64
	// commitPage is set after the header of a commit frame: the next
	// write is its page, which completes the commit.
	commitPage bool
}

// WriteAt implements vfs.File.
func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	if len(f.buf) > 0 && off != f.off+int64(len(f.buf)) {
		if err := f.flush(); err != nil {
			return 0, err
		}
	}
	if len(f.buf) == 0 {
		f.off = off
	}
	f.buf = append(f.buf, p...)
	endsCommit := f.commitPage
	f.commitPage = len(p) == walFrameHeaderSize && binary.BigEndian.Uint32(p[4:8]) != 0
	if endsCommit || len(f.buf) >= walBufferLimit {
		if err := f.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush writes what f holds.
func (f *walFile) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.File.WriteAt(f.buf, f.off)
	f.buf = f.buf[:0]
	if cap(f.buf) > walBufferLimit {
		f.buf = nil // a large transaction's buffer is not kept
	}
	return err
}

// ReadAt implements vfs.File.
func (f *walFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

// Sync implements vfs.File.
func (f *walFile) Sync(flags vfs.SyncFlag) error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Sync(flags)
}

// Size implements vfs.File.
func (f *walFile) Size() (int64, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Size()
}

// Truncate implements vfs.File.
func (f *walFile) Truncate(size int64) error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// SizeHint implements vfs.FileSizeHint.
func (f *walFile) SizeHint(size int64) error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.passThroughFile.SizeHint(size)
}

// Close implements vfs.File.
func (f *walFile) Close() error {
	return errors.Join(f.flush(), f.File.Close())
}
