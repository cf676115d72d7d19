//go:build !linux

package server

import (
	"errors"
	"log/slog"
	"net"
	"syscall"
)

// poller is unavailable outside Linux: every WebSocket connection keeps a
// reading goroutine.
type poller struct{}

// newPoller returns nil: no poller here.
func newPoller(*slog.Logger) *poller { return nil }

// add never takes a connection.
func (*poller) add(*wsConn) bool { return false }

// remove does nothing.
func (*poller) remove(*wsConn) {}

// writeNow is never called here: without the poller no connection has a
// raw socket for the flusher (newFlusher returns nil).
func writeNow(syscall.RawConn, net.Buffers) (int, error) { return 0, errors.ErrUnsupported }
