// Package aiosync flushes a file's data to stable storage (fdatasync)
// without holding a Go processor while the disk works.
//
// A blocking system call keeps its goroutine's processor (P) until the
// scheduler's monitor notices, which can take up to 10 ms and often takes
// the whole call. With GOMAXPROCS=1, as on a one-core machine, a 10–20 ms
// fdatasync therefore stops every goroutine of the process. On Linux a
// Syncer submits the fdatasync through kernel AIO (IOCB_CMD_FDSYNC), which
// a kernel worker runs, and waits for its completion on an eventfd through
// Go's network poller: the goroutine parks and the processor runs others.
// Elsewhere (other systems, and architectures whose struct iocb layout is
// not declared here) New returns ErrUnsupported and the caller syncs as
// before.
package aiosync

import "errors"

// ErrUnsupported is returned by New where kernel AIO is not available (not
// Linux, or a kernel without it) and by Fdatasync where the file system
// cannot flush a file through it; the caller then calls fdatasync itself.
var ErrUnsupported = errors.New("aiosync: asynchronous fdatasync is not supported here")
