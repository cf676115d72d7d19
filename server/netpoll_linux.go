//go:build linux

package server

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// poller holds idle WebSocket connections without a goroutine each, the
// way WunderGraph's Cosmo Router does: one goroutine per process waits on
// an epoll instance for every registered socket, and a connection that
// becomes readable gets a goroutine only while it reads and handles what
// arrived. An idle connection then costs its state on the heap and nothing
// else. It is safe for concurrent use.
type poller struct {
	epfd int
	// ep is epfd in Go's own network poller: the waiting goroutine parks
	// there instead of blocking its thread in epoll_wait.
	ep syscall.RawConn

	mu    sync.Mutex
	conns map[int]*wsConn // by file descriptor
	gen   uint32          // tells a reused descriptor from its last owner
}

var (
	sharedPoller     *poller
	sharedPollerOnce sync.Once
)

// newPoller returns the process's poller, started on first use; nil when
// epoll is not available, and connections then have a reading goroutine
// each.
func newPoller(log *slog.Logger) *poller {
	sharedPollerOnce.Do(func() {
		epfd, ep, err := openEpoll()
		if err != nil {
			log.Warn("epoll unavailable: each WebSocket keeps a reading goroutine", "err", err) // no request
			return
		}
		sharedPoller = &poller{epfd: epfd, ep: ep, conns: map[int]*wsConn{}}
		go sharedPoller.wait()
	})
	return sharedPoller
}

// openEpoll creates the poller's epoll instance and hands it, non-blocking,
// to Go's network poller, which waits on it as on a socket: an epoll
// descriptor is readable while it has events ready.
//
// A blocking epoll_wait would keep its thread's P for as long as the call
// lasts, until the runtime's monitor noticed and handed the P to another
// thread, from 20 µs up to 10 ms later. With GOMAXPROCS=1 nothing ran
// meanwhile, each time the poller went back to waiting: the server sat at a
// quarter of its core while the writers of a fan-out queued (measured: 1 ×
// 1,000 subscribers, 26 % CPU, publishers stuck at about 60 messages/s).
func openEpoll() (int, syscall.RawConn, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return -1, nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return -1, nil, errors.Join(err, syscall.Close(epfd))
	}
	// os.NewFile registers a non-blocking descriptor with the runtime's
	// poller. The file lives as long as the process.
	ep, err := os.NewFile(uintptr(epfd), "epoll").SyscallConn()
	if err != nil {
		return -1, nil, errors.Join(err, syscall.Close(epfd))
	}
	return epfd, ep, nil
}

// add registers c, whose socket the poller reads from now on; false when
// the socket has no descriptor to poll (a TLS connection, say).
func (p *poller) add(c *wsConn) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil || fd < 0 {
		return false
	}
	p.mu.Lock()
	p.gen++
	c.fd, c.raw, c.gen = fd, raw, p.gen
	p.conns[fd] = c
	p.mu.Unlock()
	if err := p.arm(c, syscall.EPOLL_CTL_ADD); err != nil {
		p.remove(c)
		c.raw = nil // read by a goroutine of its own after all
		return false
	}
	return true
}

// arm asks for one readiness event of c's socket.
func (p *poller) arm(c *wsConn, op int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(c.fd), Pad: int32(c.gen)}
	return syscall.EpollCtl(p.epfd, op, c.fd, &ev)
}

// remove forgets c.
func (p *poller) remove(c *wsConn) {
	p.mu.Lock()
	if p.conns[c.fd] == c {
		delete(p.conns, c.fd)
	}
	p.mu.Unlock()
}

// wait hands each readiness event to its connection.
func (p *poller) wait() {
	events := make([]syscall.EpollEvent, 256)
	for {
		var (
			n    int
			werr error
		)
		// epoll_wait with no timeout never blocks; Read parks this
		// goroutine in Go's poller until the instance has events.
		err := p.ep.Read(func(fd uintptr) bool {
			n, werr = syscall.EpollWait(int(fd), events, 0)
			return n > 0 || (werr != nil && !errors.Is(werr, syscall.EINTR))
		})
		if err != nil || werr != nil {
			return
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			c := p.conns[int(ev.Fd)]
			p.mu.Unlock()
			if c != nil && c.gen == uint32(ev.Pad) {
				go c.readable()
			}
		}
	}
}

// readChunk is how much one read takes from a readable socket.
const readChunk = 4 << 10

// readable reads and handles what the socket holds, then asks for the next
// readiness event; it ends the connection at end of stream.
func (c *wsConn) readable() {
	// Only one readable runs at a time (the event is one-shot, asked
	// again at the end); the lock tells the race detector so, which
	// cannot see the order epoll gives.
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		n, err := c.readSome()
		if n > 0 {
			if !c.consume() {
				c.stopPolling()
				return
			}
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			if len(c.inbuf) == 0 {
				c.inbuf = nil // an idle connection keeps no buffer
			}
			if err := c.t.poller.arm(c, syscall.EPOLL_CTL_MOD); err == nil {
				return
			}
		}
		c.stopPolling()
		return
	}
}

// readSome appends what the socket holds now, without waiting, to c.inbuf.
func (c *wsConn) readSome() (int, error) {
	if cap(c.inbuf)-len(c.inbuf) < readChunk {
		grown := make([]byte, len(c.inbuf), len(c.inbuf)+readChunk)
		copy(grown, c.inbuf)
		c.inbuf = grown
	}
	buf := c.inbuf[len(c.inbuf):cap(c.inbuf)]
	var (
		n    int
		rerr error
	)
	err := c.raw.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), buf)
		return true // never wait: the poller does
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n <= 0:
		return 0, io.EOF
	}
	c.inbuf = c.inbuf[:len(c.inbuf)+n]
	return n, nil
}

// consume handles every whole frame in c.inbuf and keeps the rest; false
// ends the connection.
func (c *wsConn) consume() bool {
	off := 0
	for off < len(c.inbuf) {
		r := bytes.NewReader(c.inbuf[off:])
		h, err := ws.ReadHeader(r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break // the header is not whole yet
		}
		if err != nil {
			c.close(CloseBadMessage, "Invalid frame")
			return false
		}
		if h.Length > c.t.maxMessage {
			c.close(ws.StatusMessageTooBig, "message too big")
			return false
		}
		start := off + len(c.inbuf[off:]) - r.Len()
		if int64(len(c.inbuf)-start) < h.Length {
			break // the payload is not whole yet
		}
		payload := bytes.Clone(c.inbuf[start : start+int(h.Length)])
		off = start + int(h.Length)
		if !c.frame(h, payload) {
			return false
		}
	}
	rest := len(c.inbuf) - off
	if rest == 0 {
		c.inbuf = nil // an idle connection keeps no buffer
		return true
	}
	copy(c.inbuf, c.inbuf[off:])
	c.inbuf = c.inbuf[:rest]
	return true
}

// stopPolling ends a polled connection.
func (c *wsConn) stopPolling() {
	c.t.poller.remove(c)
	c.finish()
}

// writeNow writes bufs to raw's socket in one writev without waiting for
// room: it returns how much the socket took, with syscall.EAGAIN when it
// took nothing.
func writeNow(raw syscall.RawConn, bufs net.Buffers) (int, error) {
	var (
		n    int
		werr error
	)
	err := raw.Write(func(fd uintptr) bool {
		n, werr = unix.Writev(int(fd), bufs)
		return true // never wait: a full socket goes to a goroutine
	})
	if err != nil {
		return 0, err
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
}
