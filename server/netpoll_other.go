//go:build !linux

package server

import "log/slog"

// poller is unavailable outside Linux: every WebSocket connection keeps a
// reading goroutine.
type poller struct{}

// newPoller returns nil: no poller here.
func newPoller(*slog.Logger) *poller { return nil }

// add never takes a connection.
func (*poller) add(*wsConn) bool { return false }

// remove does nothing.
func (*poller) remove(*wsConn) {}
