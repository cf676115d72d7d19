package server

import (
	"context"
	"net/http"
	"sync"
)

// connections tracks live WebSocket connections so that shutdown can end
// them and wait until they are done. http.Server.Shutdown does neither for
// hijacked connections, and a connection's close hook (presence) must run
// before the broker and database close.
type connections struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	closing  bool
	shutdown context.Context
	stop     context.CancelFunc
}

func newConnections() *connections {
	ctx, stop := context.WithCancel(context.Background())
	return &connections{shutdown: ctx, stop: stop}
}

// serve runs one connection with a context that shutdown cancels; false
// means the server is shutting down and the connection was not served.
func (c *connections) serve(r *http.Request, run func(*http.Request)) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(c.shutdown, cancel)
	defer stop()
	run(r.WithContext(ctx))
	return true
}

// close ends every connection and waits for them until ctx ends.
func (c *connections) close(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.stop()
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

// Shutdown ends every WebSocket connection (their subscriptions complete
// and their close hooks run) and waits for them, until ctx ends. Call it
// after http.Server.Shutdown and before closing the broker and database.
// New WebSocket connections are refused from then on.
func (h *Handler) Shutdown(ctx context.Context) error { return h.conns.close(ctx) }
