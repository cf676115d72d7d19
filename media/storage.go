// Package media holds what Parley needs to keep attachments: a Storage
// interface with a directory implementation (Dir), the signing of the
// expiring URLs that upload and download them (Signer), and the checks that
// bytes arriving match what the client declared (Check): the exact size,
// the content type as sniffed from the first 512 bytes, and an image's
// width and height from its header. Everything streams: no file is ever
// held in memory whole.
//
// It imports nothing of Parley's; package chat holds the rules (who may
// upload or read, when a URL is handed out) and package server the HTTP
// endpoints.
package media

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Storage keeps the bytes of uploads under keys chosen by the caller.
// Implementations are safe for concurrent use. A directory (Dir) is the
// one Parley has; an object store can implement the same interface.
type Storage interface {
	// Put stores what r yields under key, all or nothing: the object
	// appears only when r has been read to io.EOF without error, and a
	// failed Put leaves no trace, whatever was there before (but for
	// Dir's failed directory sync, see Dir.Put). It returns the number
	// of bytes stored.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Open returns the object stored under key for reading and seeking,
	// and when it was stored; fs.ErrNotExist when there is none. The
	// caller closes it.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, time.Time, error)
	// Delete removes the object under key; deleting one that does not
	// exist is not an error.
	Delete(ctx context.Context, key string) error
}

// Dir is a Storage in a directory of the local file system: each object is
// a file, written under a temporary name and renamed into place once
// complete, so a reader never sees a partial object. Several nodes share
// objects only through a shared directory (NFS or the like) with atomic
// rename.
type Dir struct {
	root string
}

var _ Storage = (*Dir)(nil)

// NewDir returns the Storage in the directory root, which the first Put
// creates (with its parents) when missing.
func NewDir(root string) *Dir { return &Dir{root: root} }

// tmpDir is the subdirectory of Dir's root that holds objects being
// written; on the same file system, so that renaming them is atomic.
const tmpDir = ".incoming"

// ErrBadKey refuses a key that is not 1 to 128 letters, digits, '-' or
// '_': keys never name paths.
var ErrBadKey = errors.New("media: bad storage key")

// path returns the file of key: under a subdirectory named by the key's
// last two characters, so that no directory grows too large.
func (d *Dir) path(key string) (string, error) {
	if len(key) < 1 || len(key) > 128 {
		return "", ErrBadKey
	}
	for _, c := range key {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", ErrBadKey
		}
	}
	shard := key[max(0, len(key)-2):]
	return filepath.Join(d.root, shard, key), nil
}

// Put implements Storage. The temporary file is removed on any error; on
// success it is synced, renamed into place, and the directory that now
// names it is synced (and the root too when that directory is new), so
// that an object Put reported survives a crash of the machine. The one
// failure that leaves the object in place is that last directory sync
// (an I/O error of the file system): the object may then not survive a
// crash, and Put returns the error.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (n int64, err error) {
	dst, err := d.path(key)
	if err != nil {
		return 0, err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return 0, fmt.Errorf("media: temporary name: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(d.root, tmpDir), 0o750); err != nil {
		return 0, fmt.Errorf("media: directory: %w", err)
	}
	tmp := filepath.Join(d.root, tmpDir, key+"."+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, fmt.Errorf("media: create: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if n, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, fmt.Errorf("media: sync: %w", err)
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("media: close: %w", err)
	}
	shard := filepath.Dir(dst)
	err = os.Mkdir(shard, 0o750)
	newShard := err == nil
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return n, fmt.Errorf("media: directory: %w", err)
	}
	if err = os.Rename(tmp, dst); err != nil {
		return n, fmt.Errorf("media: rename: %w", err)
	}
	if err = syncDir(shard); err == nil && newShard {
		err = syncDir(d.root)
	}
	return n, err
}

// syncDir flushes the directory dir's entries to stable storage. A file
// system that cannot sync a directory (EINVAL or ENOTSUP, as some network
// and FUSE file systems answer) is not an error: there is nothing more
// to do there.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("media: sync directory: %w", err)
	}
	err = f.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		err = nil
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("media: sync directory: %w", err)
	}
	return nil
}

// Open implements Storage.
func (d *Dir) Open(_ context.Context, key string) (io.ReadSeekCloser, time.Time, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, time.Time{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, time.Time{}, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, time.Time{}, fmt.Errorf("media: stat: %w", err)
	}
	return f, st.ModTime(), nil
}

// Delete implements Storage.
func (d *Dir) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("media: delete: %w", err)
	}
	return nil
}

// ctxReader stops reading once its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
