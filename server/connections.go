package server

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
)

// stream is a live realtime connection: a WebSocket or an event stream.
type stream interface {
	// shutdown ends it for a server shutdown: WebSockets close with
	// CloseServiceRestart, event streams end, and no subscription
	// completes, so that clients reconnect (to another node) and resume.
	shutdown()
}

// connections tracks the live realtime connections so that shutdown can
// end them and wait until they are done: http.Server.Shutdown does neither
// for hijacked connections, and waits for event streams to end by
// themselves. A connection's close hook (presence) must run before the
// broker and database close.
type connections struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	closing bool
	live    map[stream]struct{}
	// slow counts the connections closed because they fell behind.
	slow atomic.Int64
}

func newConnections() *connections {
	return &connections{live: map[stream]struct{}{}}
}

// enter counts a request that may become a connection; false means the
// server is shutting down.
func (c *connections) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.wg.Add(1)
	return true
}

// leave ends what enter counted.
func (c *connections) leave() { c.wg.Done() }

// track makes s end at shutdown; a shutdown already under way ends it at
// once.
func (c *connections) track(s stream) {
	c.mu.Lock()
	closing := c.closing
	if !closing {
		c.live[s] = struct{}{}
	}
	c.mu.Unlock()
	if closing {
		s.shutdown()
	}
}

// untrack forgets s.
func (c *connections) untrack(s stream) {
	c.mu.Lock()
	delete(c.live, s)
	c.mu.Unlock()
}

// begin refuses new connections and ends the live ones.
func (c *connections) begin() {
	c.mu.Lock()
	c.closing = true
	live := make([]stream, 0, len(c.live))
	for s := range c.live {
		live = append(live, s)
	}
	c.mu.Unlock()
	for _, s := range live {
		s.shutdown()
	}
}

// close ends every connection and waits for them until ctx ends.
func (c *connections) close(ctx context.Context) error {
	c.begin()
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handler is Parley's HTTP handler. It is safe for concurrent use.
type Handler struct {
	http.Handler
	conns *connections
}

// RealtimeStats are counts of the realtime transports, for metrics.
type RealtimeStats struct {
	// Connections are the open WebSocket connections and event streams:
	// WebSockets plus EventStreams.
	Connections int
	// WebSockets are the open WebSocket connections.
	WebSockets int
	// EventStreams are the open server-sent event streams.
	EventStreams int
	// ClosedSlow counts the connections closed, since start, because
	// they fell behind (their queue overflowed or a write stalled).
	ClosedSlow int64
}

// Stats returns the realtime counts now. Safe for concurrent use.
func (h *Handler) Stats() RealtimeStats {
	h.conns.mu.Lock()
	defer h.conns.mu.Unlock()
	s := RealtimeStats{Connections: len(h.conns.live), ClosedSlow: h.conns.slow.Load()}
	for c := range h.conns.live {
		if _, ok := c.(*wsConn); ok {
			s.WebSockets++
		}
	}
	s.EventStreams = s.Connections - s.WebSockets
	return s
}

// BeginShutdown refuses new WebSocket and SSE connections and ends the
// live ones (see Shutdown) without waiting. Register it with
// http.Server.RegisterOnShutdown, so that event streams do not hold
// http.Server.Shutdown up.
func (h *Handler) BeginShutdown() { h.conns.begin() }

// Shutdown ends every WebSocket connection with CloseServiceRestart and
// every event stream, without completing their subscriptions, and waits
// until their close hooks have run, or ctx ends. Call it after
// http.Server.Shutdown and before closing the hub, broker and database.
func (h *Handler) Shutdown(ctx context.Context) error { return h.conns.close(ctx) }
