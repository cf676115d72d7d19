package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/bench/clock"
)

// ProtocolTransportWS is the graphql-transport-ws subprotocol, the one
// graphql-ws, Apollo Client and urql speak.
const ProtocolTransportWS = "graphql-transport-ws"

// DefaultReadLimit caps one message read from the server.
const DefaultReadLimit = 1 << 20

// defaultInitTimeout bounds the handshake and connection_init round trip.
const defaultInitTimeout = 15 * time.Second

// closeWait bounds the close handshake of Close.
const closeWait = 5 * time.Second

// DialOptions configure Dial.
type DialOptions struct {
	// Token is sent in the connection_init payload as
	// {"authorization": "Bearer <Token>"}; empty sends an empty payload.
	Token string
	// HTTPClient performs the upgrade request; nil uses
	// http.DefaultClient.
	HTTPClient *http.Client
	// ReadLimit caps one server message; 0 is DefaultReadLimit.
	ReadLimit int64
	// InitTimeout bounds the upgrade and the wait for connection_ack
	// (within ctx); 0 is 15 s.
	InitTimeout time.Duration
	// RawResults hands each Next event its Payload undecoded (Data and
	// Errors stay empty), for a handler that decodes the result in one
	// pass itself: the fan-out scenario, whose reading must cost less than
	// the server's writing.
	RawResults bool
}

// EventKind says what an Event is.
type EventKind uint8

// The kinds of Event.
const (
	// Next is a result: Data, and Errors when the result has any.
	Next EventKind = iota + 1
	// ErrorEvent is an operation error: the operation is over.
	ErrorEvent
	// Complete ends the operation normally.
	Complete
)

// String names the kind as the protocol does: next, error, complete.
func (k EventKind) String() string {
	switch k {
	case Next:
		return "next"
	case ErrorEvent:
		return "error"
	case Complete:
		return "complete"
	}
	return "unknown"
}

// Event is one message for an operation.
type Event struct {
	Kind EventKind
	// Data is the result's data, for Next.
	Data json.RawMessage
	// Payload is the whole result ({"data", "errors"}) of a Next event
	// when DialOptions.RawResults is set. It is only valid during the
	// Handler call.
	Payload []byte
	// Errors are the result's errors (Next) or the operation's (ErrorEvent).
	Errors Errors
	// At is when the frame had been read and parsed, in clock.UnixNano.
	At int64
}

// Handler receives the events of one operation. It runs on the
// connection's reader goroutine, so it must be quick and must not call the
// connection's blocking methods.
type Handler func(Event)

// DialError is a connection the server refused or closed before
// acknowledging it.
type DialError struct {
	// HTTPStatus is the status of a refused upgrade, 0 when the upgrade
	// succeeded.
	HTTPStatus int
	// Code and Reason are from the close frame, when the server closed
	// the socket instead of acknowledging; Code is -1 without one.
	Code   websocket.StatusCode
	Reason string
	// Err is the underlying error.
	Err error
}

// Error says how the connection was refused.
func (e *DialError) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("websocket: upgrade refused with HTTP %d: %v", e.HTTPStatus, e.Err)
	}
	if e.Code >= 0 {
		return fmt.Sprintf("websocket: closed with %d %q before connection_ack", int(e.Code), e.Reason)
	}
	return fmt.Sprintf("websocket: %v", e.Err)
}

// Unwrap returns the underlying error.
func (e *DialError) Unwrap() error { return e.Err }

// frame is a graphql-transport-ws message.
type frame struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Conn is an acknowledged graphql-transport-ws connection. One goroutine
// reads it: it answers the server's pings with pongs and hands each
// operation's events to its Handler. Its methods are safe for concurrent
// use.
type Conn struct {
	ws *websocket.Conn

	mu       sync.Mutex
	handlers map[string]Handler
	nextID   atomic.Int64

	rawResults bool // DialOptions.RawResults

	done    chan struct{} // closed when the reader stops
	readErr error         // why it stopped; valid once done is closed
	closing atomic.Bool
	once    sync.Once
}

// Dial opens a WebSocket to url (ws:// or wss://), sends connection_init
// with the token and waits for connection_ack. A refusal is a *DialError.
func Dial(ctx context.Context, url string, opts DialOptions) (*Conn, error) {
	wait := opts.InitTimeout
	if wait <= 0 {
		wait = defaultInitTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{ProtocolTransportWS},
		HTTPClient:   opts.HTTPClient,
	})
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
		// The upgrade response's body is empty; closing it releases
		// nothing the socket needs.
		_ = resp.Body.Close()
	}
	limit := opts.ReadLimit
	if limit <= 0 {
		limit = DefaultReadLimit
	}
	ws.SetReadLimit(limit)
	if got := ws.Subprotocol(); got != ProtocolTransportWS {
		ws.CloseNow()
		return nil, &DialError{Code: -1, Err: fmt.Errorf("server chose subprotocol %q, want %q", got, ProtocolTransportWS)}
	}
	c := &Conn{ws: ws, handlers: map[string]Handler{}, done: make(chan struct{}), rawResults: opts.RawResults}
	payload := json.RawMessage(`{}`)
	if opts.Token != "" {
		payload, err = json.Marshal(map[string]string{"authorization": "Bearer " + opts.Token})
		if err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("websocket: encode connection_init: %w", err)
		}
	}
	if err := c.send(ctx, frame{Type: "connection_init", Payload: payload}); err != nil {
		ws.CloseNow()
		return nil, &DialError{Code: websocket.CloseStatus(err), Err: err}
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			derr := &DialError{Code: -1, Err: err}
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				derr.Code, derr.Reason = ce.Code, ce.Reason
			}
			return nil, derr
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("websocket: before connection_ack: decode %q: %w", truncate(string(data), 100), err)
		}
		switch f.Type {
		case "connection_ack":
			go c.read()
			return c, nil
		case "ping":
			if err := c.send(ctx, frame{Type: "pong"}); err != nil {
				ws.CloseNow()
				return nil, &DialError{Code: -1, Err: err}
			}
		}
	}
}

// send writes one frame. coder/websocket serialises concurrent writers.
func (c *Conn) send(ctx context.Context, f frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("websocket: encode %s: %w", f.Type, err)
	}
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// read dispatches frames until the connection ends.
func (c *Conn) read() {
	defer close(c.done)
	ctx := context.Background()
	// One buffer for every message: what a handler keeps, it copies
	// (Data and Errors are decoded copies; Payload is documented as
	// valid during the call).
	var buf bytes.Buffer
	for {
		_, r, err := c.ws.Reader(ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			c.readErr = err
			return
		}
		data := buf.Bytes()
		if c.rawResults {
			if id, payload, ok := splitNext(data); ok {
				c.dispatch(id, Event{Kind: Next, Payload: payload, At: clock.UnixNano()}, false)
				continue
			}
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			c.readErr = fmt.Errorf("websocket: decode %q: %w", truncate(string(data), 100), err)
			c.ws.CloseNow()
			return
		}
		switch f.Type {
		case "ping":
			// Answered from the reader; a failed write shows up as a read
			// error next.
			wctx, cancel := context.WithTimeout(ctx, closeWait)
			_ = c.send(wctx, frame{Type: "pong"})
			cancel()
		case "next":
			var r struct {
				Data   json.RawMessage `json:"data"`
				Errors Errors          `json:"errors"`
			}
			ev := Event{Kind: Next}
			if err := json.Unmarshal(f.Payload, &r); err != nil {
				ev.Errors = Errors{{Message: fmt.Sprintf("undecodable next payload: %v", err)}}
			} else {
				ev.Data, ev.Errors = r.Data, r.Errors
			}
			ev.At = clock.UnixNano()
			c.dispatch(f.ID, ev, false)
		case "error":
			var errs Errors
			if err := json.Unmarshal(f.Payload, &errs); err != nil || len(errs) == 0 {
				errs = Errors{{Message: "operation error: " + truncate(string(f.Payload), 200)}}
			}
			c.dispatch(f.ID, Event{Kind: ErrorEvent, Errors: errs, At: clock.UnixNano()}, true)
		case "complete":
			c.dispatch(f.ID, Event{Kind: Complete, At: clock.UnixNano()}, true)
		}
	}
}

// splitNext cuts a next message in the form Parley writes it,
// {"id":"<id>","type":"next","payload":<payload>} with an id free of
// escapes, into its id and payload without decoding the payload; ok is
// false for anything else, which the reader then decodes in full.
func splitNext(data []byte) (id string, payload []byte, ok bool) {
	const idStart, typeNext = `{"id":"`, `","type":"next","payload":`
	rest, found := bytes.CutPrefix(data, []byte(idStart))
	if !found {
		return "", nil, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", nil, false
	}
	payload, found = bytes.CutPrefix(rest[end:], []byte(typeNext))
	if !found || len(payload) < 2 || payload[len(payload)-1] != '}' {
		return "", nil, false
	}
	return string(rest[:end]), payload[:len(payload)-1], true
}

func (c *Conn) dispatch(id string, ev Event, last bool) {
	c.mu.Lock()
	h := c.handlers[id]
	if last {
		delete(c.handlers, id)
	}
	c.mu.Unlock()
	if h != nil {
		h(ev)
	}
}

// Subscribe starts an operation and returns its id; h gets its events.
// graphql-transport-ws does not acknowledge a subscribe: the operation is
// live once the server has processed it, which the caller has to observe
// (for example by sending a message and waiting for it).
func (c *Conn) Subscribe(ctx context.Context, query string, vars map[string]any, h Handler) (string, error) {
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	payload, err := json.Marshal(request{Query: query, Variables: vars})
	if err != nil {
		return "", fmt.Errorf("websocket: encode subscribe: %w", err)
	}
	c.mu.Lock()
	c.handlers[id] = h
	c.mu.Unlock()
	if err := c.send(ctx, frame{ID: id, Type: "subscribe", Payload: payload}); err != nil {
		c.mu.Lock()
		delete(c.handlers, id)
		c.mu.Unlock()
		return "", fmt.Errorf("websocket: subscribe: %w", err)
	}
	return id, nil
}

// Unsubscribe ends operation id from the client's side.
func (c *Conn) Unsubscribe(ctx context.Context, id string) error {
	c.mu.Lock()
	delete(c.handlers, id)
	c.mu.Unlock()
	if err := c.send(ctx, frame{ID: id, Type: "complete"}); err != nil {
		return fmt.Errorf("websocket: complete %s: %w", id, err)
	}
	return nil
}

// Done is closed when the connection has ended, for whatever reason.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended: nil while it is open or when Close
// ended it.
func (c *Conn) Err() error {
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

// Close closes the connection normally (1000), waits for the reader to
// stop and returns nil unless the close handshake failed on a connection
// that was still open. Closing twice does nothing.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() {
		c.closing.Store(true)
		select {
		case <-c.done:
			return // already gone
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

// isClosedErr reports whether err only says the connection was already
// closed or the peer completed the handshake first.
func isClosedErr(err error) bool {
	var ce websocket.CloseError
	return errors.As(err, &ce) || errors.Is(err, net.ErrClosed) || websocket.CloseStatus(err) != -1
}
