package db

import (
	"errors"

	"github.com/ncruces/go-sqlite3/vfs"
)

// walVFSName names, for a SQLite DSN (vfs=parley-wal), the log VFS:
// SQLite's default file system with each frame of the write-ahead log
// written in one call. SQLite writes a frame as two writes, its 24-byte
// header and then its page, so a send batch that changes 50 pages made 100
// system calls, 10–15 µs each on this kind of virtual machine
// (BENCHMARKS.md, round 12). A walFile holds the header and writes it with
// the page that follows it.
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

// walFrameHeaderSize is the size of a frame's header in the log
// (https://sqlite.org/fileformat2.html#walformat). The log's own header is
// 32 bytes and a page at least 512, so a 24-byte write is a frame header.
const walFrameHeaderSize = 24

// walFile is a write-ahead log opened through the log VFS. A frame header
// it is asked to write waits in memory for the frame's page, which SQLite
// writes next, right after it in the file, and the two go out in one
// write. Anything else first writes a waiting header on its own, so a
// header never waits past the write of its frame: SQLite publishes a
// commit to readers only after its last frame's write has returned, and a
// frame it abandons (a failed commit, a rolled-back transaction whose pages
// spilled into the log) is as complete in the file as without walFile.
// SQLite uses a file from one goroutine at a time.
type walFile struct {
	passThroughFile
	header    [walFrameHeaderSize]byte
	headerOff int64
	waiting   bool   // header holds a frame header not yet written
	frame     []byte // a header and its page, as written together
}

// WriteAt implements vfs.File.
func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	if f.waiting && off == f.headerOff+walFrameHeaderSize {
		f.waiting = false
		f.frame = append(append(f.frame[:0], f.header[:]...), p...)
		if _, err := f.File.WriteAt(f.frame, f.headerOff); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if err := f.flush(); err != nil {
		return 0, err
	}
	if len(p) == walFrameHeaderSize {
		copy(f.header[:], p)
		f.headerOff, f.waiting = off, true
		return len(p), nil
	}
	return f.File.WriteAt(p, off)
}

// flush writes a waiting frame header on its own.
func (f *walFile) flush() error {
	if !f.waiting {
		return nil
	}
	f.waiting = false
	_, err := f.File.WriteAt(f.header[:], f.headerOff)
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
