//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le)

package aiosync_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parleychat/parley/internal/aiosync"
)

func newSyncer(t *testing.T) *aiosync.Syncer {
	t.Helper()
	s, err := aiosync.New()
	if errors.Is(err, aiosync.ErrUnsupported) {
		t.Skip("kernel AIO is not available here")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestFdatasync: a file's writes are flushed, one context serves request
// after request, and concurrent callers take turns.
func TestFdatasync(t *testing.T) {
	s := newSyncer(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	for i := range 5 {
		page[0] = byte(i)
		if _, err := f.WriteAt(page, int64(i)*int64(len(page))); err != nil {
			t.Fatal(err)
		}
		if err := s.Fdatasync(f.Fd()); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s.Fdatasync(f.Fd()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestFdatasyncErrors: a descriptor that is not open fails with the
// kernel's error and leaves the context usable; one whose file cannot be
// synced (a pipe) reports ErrUnsupported, so that the caller syncs itself.
func TestFdatasyncErrors(t *testing.T) {
	s := newSyncer(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	closed := f.Fd()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Fdatasync(closed); err == nil || errors.Is(err, aiosync.ErrUnsupported) {
		t.Errorf("Fdatasync(closed descriptor) = %v; want the kernel's error", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := s.Fdatasync(w.Fd()); !errors.Is(err, aiosync.ErrUnsupported) {
		t.Errorf("Fdatasync(pipe) = %v; want ErrUnsupported", err)
	}
	g, err := os.Create(filepath.Join(t.TempDir(), "g"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := s.Fdatasync(g.Fd()); err != nil {
		t.Errorf("Fdatasync after the failures = %v", err)
	}
}
