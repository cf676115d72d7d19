//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le)

package aiosync

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// iocb is struct iocb of linux/aio_abi.h on a 64-bit little-endian machine
// (the build constraint above).
type iocb struct {
	data      uint64
	key       uint32
	rwFlags   uint32
	opcode    uint16
	reqprio   int16
	fildes    uint32
	buf       uint64
	nbytes    uint64
	offset    int64
	reserved2 uint64
	flags     uint32
	resfd     uint32
}

// ioEvent is struct io_event of linux/aio_abi.h.
type ioEvent struct {
	data, obj uint64
	res, res2 int64
}

const (
	iocbCmdFdsync = 3 // IOCB_CMD_FDSYNC
	iocbFlagResfd = 1 // IOCB_FLAG_RESFD: signal completion on resfd
)

// Syncer runs fdatasync through one kernel AIO context. Its methods are
// safe for concurrent use; concurrent calls run one after another.
type Syncer struct {
	mu    sync.Mutex // serialises requests: the context holds one
	ctx   uintptr    // aio_context_t
	event *os.File   // the eventfd the kernel signals, in the poller
	efd   int
	// broken is set when a request's completion could not be read: the
	// context may still hold it, so no request is submitted after it.
	broken bool
}

// New sets up an AIO context and its eventfd. It returns ErrUnsupported
// when the kernel has no AIO (ENOSYS) or refuses a context (EAGAIN: the
// system's aio-max-nr is used up).
func New() (*Syncer, error) {
	var ctx uintptr
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		if e == unix.ENOSYS || e == unix.EAGAIN || e == unix.EPERM {
			return nil, ErrUnsupported
		}
		return nil, fmt.Errorf("aiosync: io_setup: %w", e)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_, _, _ = unix.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0)
		return nil, fmt.Errorf("aiosync: eventfd: %w", err)
	}
	return &Syncer{ctx: ctx, event: os.NewFile(uintptr(efd), "aiosync-eventfd"), efd: efd}, nil
}

// Fdatasync flushes fd's data to stable storage as fdatasync(2) does,
// parking the calling goroutine until the kernel reports completion. It
// returns ErrUnsupported when the file system refuses AIO fsync (EINVAL),
// when the kernel cannot queue the request (EAGAIN), and, after a failure
// to read a completion, for every later call; and fdatasync's own error
// otherwise.
func (s *Syncer) Fdatasync(fd uintptr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return ErrUnsupported
	}
	cb := iocb{opcode: iocbCmdFdsync, fildes: uint32(fd), flags: iocbFlagResfd, resfd: uint32(s.efd)}
	cbs := [1]*iocb{&cb}
	for {
		_, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, s.ctx, 1, uintptr(unsafe.Pointer(&cbs[0])))
		runtime.KeepAlive(&cb) // the kernel has copied it when io_submit returns
		if e == 0 {
			break
		}
		if e == unix.EINTR {
			continue
		}
		if e == unix.EINVAL || e == unix.ENOSYS || e == unix.EAGAIN {
			// EAGAIN: the kernel has no room to queue the request now; the
			// caller's own fdatasync needs none.
			return ErrUnsupported
		}
		return fmt.Errorf("aiosync: io_submit: %w", e)
	}
	var count [8]byte
	if _, err := s.event.Read(count[:]); err != nil {
		s.broken = true
		return fmt.Errorf("aiosync: wait for completion: %w", err)
	}
	var ev ioEvent
	for {
		n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, s.ctx, 1, 1, uintptr(unsafe.Pointer(&ev)), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("aiosync: io_getevents: %w", e)
		}
		if n != 1 {
			return fmt.Errorf("aiosync: io_getevents returned %d events", n)
		}
		break
	}
	switch e := unix.Errno(-ev.res); {
	case ev.res >= 0:
		return nil
	case e == unix.EINVAL:
		return ErrUnsupported
	default:
		return e
	}
}

// Close releases the AIO context and its eventfd. Calls in progress must
// have returned.
func (s *Syncer) Close() error {
	_, _, e := unix.Syscall(unix.SYS_IO_DESTROY, s.ctx, 0, 0)
	var err error
	if e != 0 {
		err = fmt.Errorf("aiosync: io_destroy: %w", e)
	}
	return errors.Join(err, s.event.Close())
}
