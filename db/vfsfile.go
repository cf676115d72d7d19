package db

import (
	"github.com/ncruces/go-sqlite3/util/vfsutil"
	"github.com/ncruces/go-sqlite3/vfs"
)

// wrappingVFS is SQLite's default file system with every file it opens
// passed through wrap, which returns the file SQLite uses: the background
// VFS (backgroundVFSName) and the log VFS (walVFSName).
type wrappingVFS struct {
	vfs.VFS
	wrap func(f vfs.File, flags vfs.OpenFlag) vfs.File
}

// Open implements vfs.VFS.
func (v wrappingVFS) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, flags, err := vfsutil.WrapOpen(v.VFS, name, flags)
	if err != nil {
		return nil, flags, err
	}
	return v.wrap(f, flags), flags, nil
}

// OpenFilename implements vfs.VFSFilename.
func (v wrappingVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, flags, err := vfsutil.WrapOpenFilename(v.VFS, name, flags)
	if err != nil {
		return nil, flags, err
	}
	return v.wrap(f, flags), flags, nil
}

// passThroughFile wraps a file of SQLite's default VFS and passes every
// optional interface through to it, so that a wrapper embedding it
// overrides only the methods it changes (backgroundFile, walFile).
type passThroughFile struct {
	vfs.File
}

// Unwrap implements vfs.FileUnwrap.
func (f passThroughFile) Unwrap() vfs.File { return f.File }

// SharedMemory implements vfs.FileSharedMemory.
func (f passThroughFile) SharedMemory() vfs.SharedMemory { return vfsutil.WrapSharedMemory(f.File) }

// LockState implements vfs.FileLockState.
func (f passThroughFile) LockState() vfs.LockLevel { return vfsutil.WrapLockState(f.File) }

// PersistWAL implements vfs.FilePersistWAL.
func (f passThroughFile) PersistWAL() bool { return vfsutil.WrapPersistWAL(f.File) }

// SetPersistWAL implements vfs.FilePersistWAL.
func (f passThroughFile) SetPersistWAL(keep bool) { vfsutil.WrapSetPersistWAL(f.File, keep) }

// PowersafeOverwrite implements vfs.FilePowersafeOverwrite.
func (f passThroughFile) PowersafeOverwrite() bool { return vfsutil.WrapPowersafeOverwrite(f.File) }

// SetPowersafeOverwrite implements vfs.FilePowersafeOverwrite.
func (f passThroughFile) SetPowersafeOverwrite(psow bool) {
	vfsutil.WrapSetPowersafeOverwrite(f.File, psow)
}

// ChunkSize implements vfs.FileChunkSize.
func (f passThroughFile) ChunkSize(size int) { vfsutil.WrapChunkSize(f.File, size) }

// SizeHint implements vfs.FileSizeHint.
func (f passThroughFile) SizeHint(size int64) error { return vfsutil.WrapSizeHint(f.File, size) }

// HasMoved implements vfs.FileHasMoved.
func (f passThroughFile) HasMoved() (bool, error) { return vfsutil.WrapHasMoved(f.File) }

// Overwrite implements vfs.FileOverwrite.
func (f passThroughFile) Overwrite() error { return vfsutil.WrapOverwrite(f.File) }

// SyncSuper implements vfs.FileSync.
func (f passThroughFile) SyncSuper(super string) error { return vfsutil.WrapSyncSuper(f.File, super) }

// CommitPhaseTwo implements vfs.FileCommitPhaseTwo.
func (f passThroughFile) CommitPhaseTwo() error { return vfsutil.WrapCommitPhaseTwo(f.File) }

// BeginAtomicWrite implements vfs.FileBatchAtomicWrite.
func (f passThroughFile) BeginAtomicWrite() error { return vfsutil.WrapBeginAtomicWrite(f.File) }

// CommitAtomicWrite implements vfs.FileBatchAtomicWrite.
func (f passThroughFile) CommitAtomicWrite() error { return vfsutil.WrapCommitAtomicWrite(f.File) }

// RollbackAtomicWrite implements vfs.FileBatchAtomicWrite.
func (f passThroughFile) RollbackAtomicWrite() error { return vfsutil.WrapRollbackAtomicWrite(f.File) }

// CheckpointStart implements vfs.FileCheckpoint.
func (f passThroughFile) CheckpointStart() { vfsutil.WrapCheckpointStart(f.File) }

// CheckpointDone implements vfs.FileCheckpoint.
func (f passThroughFile) CheckpointDone() { vfsutil.WrapCheckpointDone(f.File) }

// Pragma implements vfs.FilePragma.
func (f passThroughFile) Pragma(name, value string) (string, error) {
	return vfsutil.WrapPragma(f.File, name, value)
}

// BusyHandler implements vfs.FileBusyHandler.
func (f passThroughFile) BusyHandler(handler func() bool) { vfsutil.WrapBusyHandler(f.File, handler) }

// MemoryMapper implements vfs.FileMemoryMapper.
func (f passThroughFile) MemoryMapper() vfs.MemoryMapper { return vfsutil.WrapMemoryMapper(f.File) }
