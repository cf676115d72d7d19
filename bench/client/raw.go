package client

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// RawConn is a plain WebSocket connection without GraphQL: every text
// message the server sends is handed, whole, to a callback. It is the
// client side of the raw fan-out baseline.
type RawConn struct {
	ws      *websocket.Conn
	done    chan struct{}
	readErr error
	closing atomic.Bool
	once    sync.Once
}

// DialRaw opens a WebSocket to url and calls onMessage, on the reader
// goroutine, with each message. onMessage must be quick; data is only
// valid during the call (the reader reuses one buffer).
func DialRaw(ctx context.Context, url string, opts DialOptions, onMessage func(data []byte)) (*RawConn, error) {
	wait := opts.InitTimeout
	if wait <= 0 {
		wait = defaultInitTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: opts.HTTPClient})
	if err != nil {
		derr := &DialError{Code: -1, Err: err}
		if resp != nil {
			derr.HTTPStatus = resp.StatusCode
			if resp.Body != nil {
				// Only the status matters here.
				_ = resp.Body.Close()
			}
		}
		return nil, derr
	}
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	limit := opts.ReadLimit
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	ws.SetReadLimit(limit)
	c := &RawConn{ws: ws, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		var buf bytes.Buffer
		for {
			_, r, err := ws.Reader(context.Background())
			if err == nil {
				buf.Reset()
				_, err = buf.ReadFrom(r)
			}
			if err != nil {
				c.readErr = err
				return
			}
			onMessage(buf.Bytes())
		}
	}()
	return c, nil
}

// Done is closed when the connection has ended.
func (c *RawConn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended: nil while it is open or when Close
// ended it.
func (c *RawConn) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	if c.closing.Load() {
		return nil
	}
	return c.readErr
}

// Close closes the connection normally and waits for the reader to stop.
func (c *RawConn) Close() error {
	var err error
	c.once.Do(func() {
		c.closing.Store(true)
		select {
		case <-c.done:
			return
		default:
		}
		err = c.ws.Close(websocket.StatusNormalClosure, "")
		select {
		case <-c.done:
		case <-time.After(closeWait):
			c.ws.CloseNow()
			<-c.done
		}
		if err != nil && isClosedErr(err) {
			err = nil
		}
	})
	return err
}
