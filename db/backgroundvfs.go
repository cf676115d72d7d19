package db

import (
	"errors"
	"runtime"
	"sync/atomic"

	"github.com/ncruces/go-sqlite3/vfs"

	"github.com/parleychat/parley/internal/aiosync"
)

// backgroundVFSName names, for a SQLite DSN (vfs=parley-background), the
// background VFS: SQLite's default file system for a connection that
// works in the background, the checkpointer's. It gives the processor to
// the goroutines serving requests wherever the default one would keep it.
//
//   - After every page it reads or writes, the goroutine yields
//     (runtime.Gosched). A checkpoint copies a few hundred pages, a pread
//     and a pwrite each, and Go's scheduler takes the processor from a
//     goroutine making many short system calls only after 10 ms.
//   - It syncs through kernel AIO (package aiosync), so the goroutine
//     parks while the disk flushes. A blocking fdatasync keeps the
//     processor for as long as it takes, 10–20 ms under load here.
//
// With GOMAXPROCS=1, as on a one-core machine, the checkpointer held the
// only processor for 11–27 ms at every checkpoint, a fifth of the time,
// and every request in flight waited (BENCHMARKS.md, round 12).
//
// Files, locks and shared memory are the default VFS's, so connections
// through either VFS share the same database and write-ahead log.
const backgroundVFSName = "parley-background"

func init() {
	vfs.Register(backgroundVFSName, wrappingVFS{vfs.Find(""), func(f vfs.File, _ vfs.OpenFlag) vfs.File {
		return newBackgroundFile(f)
	}})
}

// backgroundFile is a file of the background VFS: the default VFS's file,
// yielding after each read and write and syncing through AIO, with every
// optional interface passed through. SQLite uses a file from one goroutine
// at a time.
type backgroundFile struct {
	passThroughFile
	// fd is the file's descriptor, and syncer its AIO context; syncer is
	// nil where AIO is unavailable.
	fd     uintptr
	syncer *aiosync.Syncer
	// useAIO is cleared when the file system refuses AIO fsync; Sync is
	// then the default VFS's.
	useAIO bool
	// synced is set once the default VFS has synced the file: its first
	// sync may also sync the directory of a new journal, which only it
	// knows about.
	synced bool
}

// newBackgroundFile wraps f, with an AIO context of its own when f is an
// operating system file and the kernel has AIO.
func newBackgroundFile(f vfs.File) *backgroundFile {
	b := &backgroundFile{passThroughFile: passThroughFile{f}}
	if osFile, ok := f.(interface{ Fd() uintptr }); ok {
		if s, err := aiosync.New(); err == nil {
			b.fd, b.syncer, b.useAIO = osFile.Fd(), s, true
		}
	}
	return b
}

// ReadAt implements vfs.File.
func (f *backgroundFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	runtime.Gosched()
	return n, err
}

// WriteAt implements vfs.File.
func (f *backgroundFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	runtime.Gosched()
	return n, err
}

// Sync implements vfs.File: fdatasync through AIO, as the default VFS
// syncs every file with fdatasync on Linux. The file's first sync, and
// every sync where AIO is unavailable or refused, is the default VFS's.
func (f *backgroundFile) Sync(flags vfs.SyncFlag) error {
	if f.useAIO && f.synced {
		err := f.syncer.Fdatasync(f.fd)
		if !errors.Is(err, aiosync.ErrUnsupported) {
			if err == nil {
				backgroundSyncs.Add(1)
			}
			return err
		}
		f.useAIO = false
	}
	f.synced = true
	return f.File.Sync(flags)
}

// Close implements vfs.File.
func (f *backgroundFile) Close() error {
	var err error
	if f.syncer != nil {
		err = f.syncer.Close()
	}
	return errors.Join(f.File.Close(), err)
}

// backgroundSyncs counts the syncs that went through AIO, for tests.
var backgroundSyncs atomic.Int64
