package parleytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The WebSocket subprotocols Parley speaks.
const (
	// ProtocolTransportWS is graphql-transport-ws, spoken by graphql-ws,
	// Apollo Client and urql; Dial uses it unless told otherwise.
	ProtocolTransportWS = "graphql-transport-ws"
	// ProtocolLegacy is the legacy graphql-ws protocol of
	// subscriptions-transport-ws.
	ProtocolLegacy = "graphql-ws"
)

// dialWait bounds the handshake and connection_init round trip of a Dial.
const dialWait = 10 * time.Second

// DialOption changes how Dial connects.
type DialOption func(*dialConfig)

type dialConfig struct {
	legacy      bool
	headerToken bool
	payload     map[string]any
	payloadSet  bool
	header      http.Header
	paused      bool
}

// WithLegacyProtocol speaks the legacy graphql-ws subprotocol.
func WithLegacyProtocol() DialOption { return func(c *dialConfig) { c.legacy = true } }

// WithHeaderToken sends the identity's token as the upgrade request's
// Authorization header instead of in the connection_init payload.
func WithHeaderToken() DialOption { return func(c *dialConfig) { c.headerToken = true } }

// WithInitPayload sends payload as the connection_init payload instead of
// {"authorization": "Bearer <token>"}; the identity's token is then not sent
// in it.
func WithInitPayload(payload map[string]any) DialOption {
	return func(c *dialConfig) { c.payload, c.payloadSet = payload, true }
}

// WithHeader adds a header to the upgrade request, e.g. Origin.
func WithHeader(key, value string) DialOption {
	return func(c *dialConfig) { c.header.Add(key, value) }
}

// WithPausedReading leaves the acknowledged connection unread, like a
// client that fell behind, until WSConn.Resume. Pings go unanswered
// meanwhile.
func WithPausedReading() DialOption { return func(c *dialConfig) { c.paused = true } }

// DialError says how the server refused a connection.
type DialError struct {
	// HTTPStatus is the status of a refused upgrade (e.g. 403 for a foreign
	// Origin), 0 when the upgrade succeeded.
	HTTPStatus int
	// Code and Reason are from the server's close frame when it closed the
	// socket instead of acknowledging connection_init; Code is -1 when
	// there was no close frame.
	Code   websocket.StatusCode
	Reason string
	// ConnectionError is the message of a legacy graphql-ws
	// connection_error, if one came.
	ConnectionError string
	// ConnectionErrorCode is that connection_error's extensions.code.
	ConnectionErrorCode string
	// Err is the underlying error.
	Err error
}

func (e *DialError) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("upgrade refused with HTTP %d: %v", e.HTTPStatus, e.Err)
	}
	return fmt.Sprintf("closed with %d %q before connection_ack (connection_error %q): %v", int(e.Code), e.Reason, e.ConnectionError, e.Err)
}

// Dial opens a WebSocket to /graphql as identity ("" sends no token), sends
// connection_init and waits for connection_ack; any other outcome fails the
// test. The connection is closed when the test ends.
func (s *Server) Dial(t testing.TB, identity string, opts ...DialOption) *WSConn {
	t.Helper()
	c, err := s.TryDial(t, identity, opts...)
	if err != nil {
		t.Fatalf("dial as %q: %v", identity, err)
	}
	return c
}

// TryDial is Dial for connections the server may refuse: it returns the
// connection, or how it was refused.
func (s *Server) TryDial(t testing.TB, identity string, opts ...DialOption) (*WSConn, *DialError) {
	t.Helper()
	cfg := dialConfig{header: http.Header{}}
	for _, o := range opts {
		o(&cfg)
	}
	payload := map[string]any{}
	if identity != "" {
		token := "Bearer " + s.Token(identity)
		if cfg.headerToken {
			cfg.header.Set("Authorization", token)
		} else {
			payload["authorization"] = token
		}
	}
	if cfg.payloadSet {
		payload = cfg.payload
	}
	protocol := ProtocolTransportWS
	if cfg.legacy {
		protocol = ProtocolLegacy
	}

	ctx, cancel := context.WithTimeout(context.Background(), dialWait)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{protocol},
		HTTPHeader:   cfg.header,
	})
	if err != nil {
		derr := &DialError{Code: -1, Err: err}
		if resp != nil {
			derr.HTTPStatus = resp.StatusCode
			if resp.Body != nil {
				resp.Body.Close()
			}
		}
		return nil, derr
	}
	conn.SetReadLimit(64 << 20)
	if got := conn.Subprotocol(); got != protocol {
		conn.CloseNow()
		t.Fatalf("server chose subprotocol %q, want %q", got, protocol)
	}

	c := &WSConn{Subprotocol: protocol, t: t, conn: conn, subs: map[string]*stream{}, done: make(chan struct{})}
	if err := c.send(&wsMessage{Type: "connection_init", Payload: mustMarshal(t, payload)}); err != nil {
		conn.CloseNow()
		return nil, &DialError{Code: websocket.CloseStatus(err), Err: err}
	}
	var connErr Error
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			conn.CloseNow()
			derr := &DialError{Code: -1, ConnectionError: connErr.Message, ConnectionErrorCode: connErr.Code(), Err: err}
			if ce, ok := errors.AsType[websocket.CloseError](err); ok {
				derr.Code, derr.Reason = ce.Code, ce.Reason
			}
			return nil, derr
		}
		m, err := decodeMessage(typ, data)
		if err != nil {
			conn.CloseNow()
			t.Fatalf("before connection_ack: %v", err)
		}
		if m.Type == "connection_ack" {
			break
		}
		if m.Type == "connection_error" {
			connErr = firstError(m.Payload)
		}
	}
	c.paused = cfg.paused
	if !c.paused {
		go c.read()
	}
	t.Cleanup(c.Close)
	return c, nil
}

// Resume starts reading a connection dialled WithPausedReading.
func (c *WSConn) Resume() {
	c.resumeOnce.Do(func() {
		if c.paused {
			c.resumed.Store(true)
			go c.read()
		}
	})
}

// WSConn is an acknowledged GraphQL WebSocket connection. It answers the
// server's pings, and one goroutine reads and dispatches messages to the
// subscriptions by id. Its methods are safe for concurrent use.
type WSConn struct {
	// Subprotocol is ProtocolTransportWS or ProtocolLegacy.
	Subprotocol string

	t    testing.TB
	conn *websocket.Conn

	mu     sync.Mutex
	subs   map[string]*stream
	nextID int

	done    chan struct{} // closed when the reader stops
	readErr error         // why it stopped; valid once done is closed
	once    sync.Once

	paused     bool // dialled WithPausedReading: read starts at Resume
	resumeOnce sync.Once
	resumed    atomic.Bool // Resume was called
}

// wsMessage is a message of either subprotocol.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func decodeMessage(typ websocket.MessageType, data []byte) (*wsMessage, error) {
	if typ != websocket.MessageText {
		return nil, fmt.Errorf("got a binary message: %q", data)
	}
	var m wsMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode message %q: %w", data, err)
	}
	return &m, nil
}

func (c *WSConn) legacy() bool { return c.Subprotocol == ProtocolLegacy }

func (c *WSConn) send(m *wsMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialWait)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// read dispatches messages until the connection ends.
func (c *WSConn) read() {
	defer close(c.done)
	for {
		if _, err := c.readOne(context.Background()); err != nil {
			c.readErr = err
			return
		}
	}
}

// readOne reads one message and dispatches it to its operation; an error
// when the connection ended or sent what no client accepts (it is then
// closed).
func (c *WSConn) readOne(ctx context.Context) (*wsMessage, error) {
	typ, data, err := c.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	m, err := decodeMessage(typ, data)
	if err != nil {
		c.conn.CloseNow()
		return nil, err
	}
	switch m.Type {
	case "ping":
		// Answered from the reading goroutine; a failed write shows up as
		// a read error next.
		_ = c.send(&wsMessage{Type: "pong"})
	case "next", "data":
		c.deliver(m.ID, decodeResult(m.Payload))
	case "error":
		var errs []Error
		if err := json.Unmarshal(m.Payload, &errs); err != nil {
			errs = []Error{{Message: errorMessage(m.Payload)}}
		}
		c.deliver(m.ID, event{kind: "error", errors: errs})
	case "complete":
		c.deliver(m.ID, event{kind: "complete"})
	}
	return m, nil
}

// readyQuery is what Ready runs: the smallest operation there is.
const readyQuery = `{ __typename }`

// Ready waits until every operation sent before on the connection has
// started on the server, so that a subscription among them receives what
// is published from then on. graphql-transport-ws and graphql-ws
// acknowledge no subscribe; but the server starts a connection's
// operations one after the other, in the order they arrive (a
// subscription is registered with the node's hub, and its topics
// followed on the broker, before the next one starts), so Ready sends
// { __typename } on the same connection and waits for its result and
// complete. A subscription the server refused has its error waiting by
// then.
//
// On a connection dialled WithPausedReading and not resumed, Ready reads
// up to that answer itself, dispatching what comes before it, and leaves
// the connection unread again. No answer within dialWait fails the test.
func (c *WSConn) Ready(t testing.TB) {
	t.Helper()
	probe := c.Subscribe(readyQuery, nil)
	if c.paused && !c.resumed.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), dialWait)
		defer cancel()
		for {
			m, err := c.readOne(ctx)
			if err != nil {
				t.Fatalf("ready: %v", err)
			}
			if m.ID == probe.ID && m.Type == "complete" {
				break
			}
		}
	}
	probe.Next(t, dialWait)
	probe.Complete(t, dialWait)
	c.mu.Lock()
	delete(c.subs, probe.ID)
	c.mu.Unlock()
}

func (c *WSConn) deliver(id string, ev event) {
	c.mu.Lock()
	s := c.subs[id]
	c.mu.Unlock()
	if s != nil {
		s.push(ev)
	}
}

// Subscribe starts an operation (usually a subscription) on the connection.
func (c *WSConn) Subscribe(query string, vars map[string]any) *WSSub {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := strconv.Itoa(c.nextID)
	s := newStream(c.done, c.closedErr)
	c.subs[id] = s
	c.mu.Unlock()
	typ := "subscribe"
	if c.legacy() {
		typ = "start"
	}
	payload := mustMarshal(c.t, map[string]any{"query": query, "variables": vars})
	if err := c.send(&wsMessage{ID: id, Type: typ, Payload: payload}); err != nil {
		c.t.Fatalf("subscribe: %v", err)
	}
	return &WSSub{ID: id, stream: s, c: c}
}

// CloseCode waits up to timeout for the server to close the connection and
// returns the close code: -1 when the socket ended without a close frame.
func (c *WSConn) CloseCode(t testing.TB, timeout time.Duration) websocket.StatusCode {
	t.Helper()
	select {
	case <-c.done:
		return websocket.CloseStatus(c.readErr)
	case <-time.After(timeout):
		t.Fatalf("connection still open after %v", timeout)
		return 0
	}
}

// Close closes the connection normally (1000) and waits for the server to
// answer. Closing twice does nothing.
func (c *WSConn) Close() {
	c.once.Do(func() {
		c.Resume() // the reader sees the close handshake through
		_ = c.conn.Close(websocket.StatusNormalClosure, "")
		select {
		case <-c.done:
		case <-time.After(dialWait):
			c.conn.CloseNow()
			<-c.done
		}
	})
}

func (c *WSConn) closedErr() error {
	return fmt.Errorf("connection closed: %w", c.readErr)
}

// WSSub is one operation on a WSConn.
type WSSub struct {
	// ID is the operation id on the connection.
	ID string
	*stream
	c *WSConn
}

// Ready waits until the operation has started on the server: see
// WSConn.Ready, which it calls on the operation's connection.
func (s *WSSub) Ready(t testing.TB) {
	t.Helper()
	s.c.Ready(t)
}

// Stop ends the operation from the client's side (graphql-transport-ws
// complete, graphql-ws stop).
func (s *WSSub) Stop() {
	typ := "complete"
	if s.c.legacy() {
		typ = "stop"
	}
	// A connection that is gone has stopped the operation anyway.
	_ = s.c.send(&wsMessage{ID: s.ID, Type: typ})
}

// SSE starts an operation over server-sent events as identity ("" is
// anonymous): a POST to /graphql with Accept: text/event-stream. A status
// other than 200 fails the test. The stream is closed when the test ends.
func (s *Server) SSE(t testing.TB, identity, query string, vars map[string]any) *SSEStream {
	t.Helper()
	header := http.Header{"Content-Type": {"application/json"}}
	if identity != "" {
		header.Set("Authorization", "Bearer "+s.Token(identity))
	}
	body, cancel := openEventStream(t, http.MethodPost, s.URL+"/graphql", mustMarshal(t, map[string]any{"query": query, "variables": vars}), header)
	done := make(chan struct{})
	st := &SSEStream{cancel: cancel, done: done, live: make(chan struct{})}
	st.stream = newStream(done, func() error { return fmt.Errorf("event stream ended: %v", st.readErr) })
	go st.read(body)
	t.Cleanup(st.Close)
	return st
}

// SSEStream is an operation over server-sent events.
type SSEStream struct {
	*stream
	cancel  context.CancelFunc
	done    chan struct{}
	live    chan struct{} // closed at the server's ": live" comment
	readErr error         // valid once done is closed
}

// Ready waits until the subscription is live on the server: anything
// published from then on reaches it. The server says so with a comment
// line, ": live", which event-stream clients ignore. A stream that ends
// first (a refused subscription, or a query) or nothing within dialWait
// fails the test.
func (s *SSEStream) Ready(t testing.TB) {
	t.Helper()
	select {
	case <-s.live:
	case <-s.done:
		select {
		case <-s.live:
		default:
			t.Fatalf("event stream ended before it was live: %v", s.readErr)
		}
	case <-time.After(dialWait):
		t.Fatalf("event stream not live within %v", dialWait)
	}
}

// read parses the event stream until it ends.
func (s *SSEStream) read(body io.ReadCloser) {
	defer close(s.done)
	live := false
	s.readErr = readEvents(body, func(comment string) {
		if comment == "live" && !live {
			live = true
			close(s.live)
		}
	}, func(name, data string) {
		switch name {
		case "next":
			s.push(decodeResult(json.RawMessage(data)))
		case "complete":
			s.push(event{kind: "complete"})
		}
	})
}

// Close ends the request. Closing twice does nothing.
func (s *SSEStream) Close() {
	s.cancel()
	<-s.done
}

// event is what a stream delivers: "next" (data and errors), "error" or
// "complete".
type event struct {
	kind   string
	data   json.RawMessage
	errors []Error
}

func decodeResult(payload json.RawMessage) event {
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []Error         `json:"errors"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return event{kind: "error", errors: []Error{{Message: fmt.Sprintf("undecodable payload %q", payload)}}}
	}
	return event{kind: "next", data: r.Data, errors: r.Errors}
}

// errorMessage is the message of a payload holding one error or a list.
func errorMessage(payload json.RawMessage) string {
	return firstError(payload).Message
}

// firstError decodes an error payload: one error or a list of them (the
// first is returned); anything else becomes an error whose message is the
// payload.
func firstError(payload json.RawMessage) Error {
	var one Error
	if json.Unmarshal(payload, &one) == nil && one.Message != "" {
		return one
	}
	var list []Error
	if json.Unmarshal(payload, &list) == nil && len(list) > 0 {
		return list[0]
	}
	return Error{Message: string(payload)}
}

// stream queues what one operation receives, without bound, for the test
// to take in order.
type stream struct {
	mu     sync.Mutex
	queue  []event
	signal chan struct{}
	// ended is closed when nothing more can come; why says why.
	ended <-chan struct{}
	why   func() error
}

func newStream(ended <-chan struct{}, why func() error) *stream {
	return &stream{signal: make(chan struct{}, 1), ended: ended, why: why}
}

func (s *stream) push(ev event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *stream) pop() (event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return event{}, false
	}
	ev := s.queue[0]
	s.queue = s.queue[1:]
	return ev, true
}

// wait returns the next event; err says why none came within timeout.
func (s *stream) wait(timeout time.Duration) (event, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		if ev, ok := s.pop(); ok {
			return ev, nil
		}
		select {
		case <-s.signal:
		case <-s.ended:
			if ev, ok := s.pop(); ok {
				return ev, nil
			}
			return event{}, s.why()
		case <-timer.C:
			return event{}, fmt.Errorf("nothing within %v", timeout)
		}
	}
}

func (ev event) String() string {
	switch {
	case ev.kind == "next" && len(ev.errors) > 0:
		return fmt.Sprintf("next with errors %+v (data %s)", ev.errors, ev.data)
	case ev.kind == "next":
		return fmt.Sprintf("next %s", ev.data)
	case ev.kind == "error":
		return fmt.Sprintf("error %+v", ev.errors)
	}
	return ev.kind
}

// Wait returns the data of the next result; an error when the stream
// ends, or nothing comes within timeout. A result with errors fails the
// test.
func (s *stream) Wait(timeout time.Duration) (json.RawMessage, error) {
	ev, err := s.wait(timeout)
	if err != nil {
		return nil, err
	}
	if ev.kind != "next" || len(ev.errors) > 0 {
		return nil, fmt.Errorf("got %v", ev)
	}
	return ev.data, nil
}

// Pending returns what arrived and has not been taken, without waiting;
// an error when nothing did.
func (s *stream) Pending() (fmt.Stringer, error) {
	if ev, ok := s.pop(); ok {
		return ev, nil
	}
	return nil, errors.New("nothing pending")
}

// Next returns the data of the next result. An error, a result with
// errors, the end of the stream or nothing within timeout fails the test.
func (s *stream) Next(t testing.TB, timeout time.Duration) json.RawMessage {
	t.Helper()
	ev, err := s.wait(timeout)
	if err != nil {
		t.Fatalf("want next: %v", err)
	}
	if ev.kind != "next" || len(ev.errors) > 0 {
		t.Fatalf("want next, got %v", ev)
	}
	return ev.data
}

// Result returns the next result: its data, or the errors of an error or
// of a result with errors. The end of the stream or nothing within timeout
// fails the test.
func (s *stream) Result(t testing.TB, timeout time.Duration) (json.RawMessage, []Error) {
	t.Helper()
	ev, err := s.wait(timeout)
	if err != nil {
		t.Fatalf("want a result: %v", err)
	}
	if ev.kind != "next" && ev.kind != "error" {
		t.Fatalf("want a result, got %v", ev)
	}
	if len(ev.errors) > 0 {
		return nil, ev.errors
	}
	return ev.data, nil
}

// Err returns the errors of the next message, which must be an error or a
// result with errors.
func (s *stream) Err(t testing.TB, timeout time.Duration) []Error {
	t.Helper()
	ev, err := s.wait(timeout)
	if err != nil {
		t.Fatalf("want errors: %v", err)
	}
	if len(ev.errors) == 0 {
		t.Fatalf("want errors, got %v", ev)
	}
	return ev.errors
}

// Complete expects the next message to end the stream normally.
func (s *stream) Complete(t testing.TB, timeout time.Duration) {
	t.Helper()
	ev, err := s.wait(timeout)
	if err != nil {
		t.Fatalf("want complete: %v", err)
	}
	if ev.kind != "complete" {
		t.Fatalf("want complete, got %v", ev)
	}
}

// NoEvent asserts that nothing arrives within d, and that the connection
// stays open meanwhile.
func (s *stream) NoEvent(t testing.TB, d time.Duration) {
	t.Helper()
	ev, err := s.wait(d)
	if err == nil {
		t.Fatalf("want no event for %v, got %v", d, ev)
	}
	select {
	case <-s.ended:
		t.Fatalf("want no event: %v", err)
	default:
	}
}

func mustMarshal(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}
