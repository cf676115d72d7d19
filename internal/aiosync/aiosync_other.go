//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le))

package aiosync

// Syncer is unavailable here (not Linux, or an architecture whose struct
// iocb layout this package does not declare); New always fails.
type Syncer struct{}

// New returns ErrUnsupported here.
func New() (*Syncer, error) { return nil, ErrUnsupported }

// Fdatasync returns ErrUnsupported here.
func (*Syncer) Fdatasync(uintptr) error { return ErrUnsupported }

// Close does nothing here.
func (*Syncer) Close() error { return nil }
