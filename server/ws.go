package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gobwas/ws"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/metrics"
	"github.com/parleychat/parley/ratelimit"
)

// Close codes of Parley's WebSocket connections. The 44xx codes are the
// graphql-transport-ws protocol's.
const (
	// CloseForbidden closes a connection whose token is missing, invalid
	// or expired, at connection_init or when it expires on an open
	// socket; graphql-ws clients reconnect and call connectionParams
	// again for a fresh token.
	CloseForbidden = 4403
	// CloseUnauthorized closes a connection that subscribes before
	// connection_ack.
	CloseUnauthorized = 4401
	// CloseInitTimeout closes a graphql-transport-ws connection that sent
	// no connection_init within WebSocketOptions.InitTimeout (legacy
	// graphql-ws connections get 1002).
	CloseInitTimeout = 4408
	// CloseBadMessage closes a connection that sent malformed JSON, an
	// unknown message type, a message without a valid id, or a binary
	// frame.
	CloseBadMessage = 4400
	// CloseSubscriberExists closes a connection that subscribes with the
	// id of an operation still running.
	CloseSubscriberExists = 4409
	// CloseTooManyInits closes a connection that sends connection_init
	// twice.
	CloseTooManyInits = 4429
	// CloseRateLimited closes a connection over its user's connection
	// limits (too many new connections, or too many open): the protocol's
	// "too many requests" code, with a reason that says how long to wait.
	CloseRateLimited = 4429
	// CloseTryAgainLater (1013) closes a connection that fell behind: its
	// queue overflowed, or a write stalled longer than
	// WebSocketOptions.WriteTimeout. Clients reconnect and resume.
	CloseTryAgainLater = 1013
	// CloseServiceRestart (1012) closes every connection when the server
	// shuts down; clients reconnect, to another node, and resume.
	CloseServiceRestart = 1012
)

// wsTransport is Parley's GraphQL over WebSocket transport: the
// graphql-transport-ws protocol (graphql-ws, Apollo Client, urql) and the
// legacy graphql-ws one (subscriptions-transport-ws), behind gqlgen's
// graphql.Transport. The poller reads idle connections and the flusher
// writes them, without a goroutine per connection; everything queued for a
// connection goes out in one write (writev), up to maxWriteBytes. A
// connection whose socket is full, or that the poller cannot hold, gets a
// writing goroutine of its own while it has something to write, and one
// that reads it.
type wsTransport struct {
	// poller reads idle connections; nil gives each a reading goroutine.
	poller *poller
	// flusher writes the poller's connections; nil gives each connection
	// a writing goroutine while it has something to write.
	flusher    *flusher
	rt         *realtime
	hub        *hub.Hub
	opts       WebSocketOptions
	maxMessage int64
	conns      *connections
	present    graphql.ErrorPresenterFunc
}

var _ graphql.Transport = (*wsTransport)(nil)

// maxWriteBytes caps one write of a connection's queued frames.
const maxWriteBytes = 256 << 10

// maxWriteVecs caps the buffers of one write: Linux takes at most 1,024
// in one writev (IOV_MAX), and a frame has up to three.
const maxWriteVecs = 1024

// Supports implements graphql.Transport: GET with Upgrade: websocket.
func (t *wsTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHas(r.Header, "Upgrade", "websocket")
}

// headerHas reports whether a comma-separated header holds token.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// Do implements graphql.Transport: it upgrades the request and serves the
// connection until it ends or the server shuts down.
func (t *wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if origin := r.Header.Get("Origin"); origin != "" && !sameHost(origin, r.Host) && !originAllowed(t.opts.AllowedOrigins, origin) {
		writeText(w, http.StatusForbidden, "origin not allowed")
		return
	}
	protocol := ""
	up := ws.HTTPUpgrader{Protocol: func(p string) bool {
		if protocol == "" && (p == protocolTransportWS || p == protocolLegacy) {
			protocol = p
			return true
		}
		return false
	}}
	if !t.conns.enter() {
		writeText(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		t.conns.leave()
		t.rt.log.DebugContext(r.Context(), "websocket upgrade refused", "err", err)
		if nc != nil {
			_ = nc.Close()
		}
		return
	}
	c := &wsConn{
		t: t, exec: exec, nc: nc, legacy: protocol != protocolTransportWS,
		ops: map[string]*operation{}, wakeup: make(chan struct{}, 1),
	}
	c.br = rw.Reader
	if rw.Reader.Buffered() == 0 {
		c.br = nil // read the socket directly; the server's buffer goes
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(r.Context()))
	if p, ok := auth.FromContext(r.Context()); ok {
		c.headerPrincipal, c.hasHeaderPrincipal = p, true
	}
	t.conns.track(c)
	// serve returns at once when the poller takes the connection over;
	// finish, when the connection ends, untracks it and leaves.
	c.serve()
}

// The subprotocols.
const (
	protocolTransportWS = "graphql-transport-ws"
	protocolLegacy      = "graphql-ws"
)

// sameHost reports whether origin's host is host (the server's own pages).
func sameHost(origin, host string) bool {
	_, rest, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(rest, host)
}

// wsConn is one WebSocket connection.
type wsConn struct {
	t      *wsTransport
	exec   graphql.GraphExecutor
	nc     net.Conn
	br     *bufio.Reader // buffered bytes left by the upgrade, or nil
	legacy bool
	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc
	wakeup chan struct{} // wakes a replay waiting for room in the queue

	headerPrincipal    auth.Principal
	hasHeaderPrincipal bool

	// Reading: a text message's fragments so far, and (when the poller
	// reads the socket) bytes of a frame not whole yet. Used by one
	// reader at a time.
	readMu  sync.Mutex
	message []byte
	inbuf   []byte
	// fd, raw and gen identify the socket to the poller.
	fd  int
	raw syscall.RawConn
	gen uint32
	// finished makes finish run once, whoever notices the end first.
	finished sync.Once

	// mu guards the fields below.
	mu        sync.Mutex
	queue     []wsFrame
	queued    int // frames in queue
	writing   bool
	closing   bool // a close frame is queued or the socket is gone
	initSeen  bool
	acked     bool
	principal auth.Principal
	// stopExpiry stops the timer (on the hub's clock) that closes the
	// connection when principal's token expires.
	stopExpiry func() bool
	// session is the connection's hub session (hub.OpenSession), through
	// which refreshSession renews its token; empty before connection_ack.
	session  string
	ops      map[string]*operation
	timers   []*time.Timer
	lastPong time.Time
	hooked   bool   // RealtimeHooks.Connected was called
	unlimit  func() // gives back the connection's place in its user's limits
}

// wsFrame is one queued WebSocket frame: head (the frame header and, for
// a next message, the envelope up to the payload), body (a payload shared
// by every subscriber of a group) and tail. last closes the socket once
// written.
type wsFrame struct {
	head, body, tail []byte
	last             bool
}

// serve reads the connection until it ends.
func (c *wsConn) serve() {
	if c.t.poller != nil && c.br == nil && c.t.poller.add(c) {
		// The poller reads the socket from now on: no goroutine waits
		// while the connection is idle.
		c.armInitTimeout()
		return
	}
	c.armInitTimeout()
	defer c.finish()
	var src io.Reader = c.nc
	if c.br != nil {
		src = io.MultiReader(c.br, c.nc)
	}
	for {
		h, err := ws.ReadHeader(src)
		if err != nil {
			return
		}
		if h.Length > c.t.maxMessage {
			c.close(ws.StatusMessageTooBig, "message too big")
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(src, payload); err != nil {
			return
		}
		if !c.frame(h, payload) {
			return
		}
	}
}

// armInitTimeout closes the connection if connection_init does not come
// within WebSocketOptions.InitTimeout.
func (c *wsConn) armInitTimeout() {
	c.after(c.t.opts.InitTimeout, func() {
		c.mu.Lock()
		seen := c.initSeen
		c.mu.Unlock()
		if seen {
			return
		}
		if c.legacy {
			c.close(ws.StatusProtocolError, "connection initialisation timeout")
		} else {
			c.close(CloseInitTimeout, "Connection initialisation timeout")
		}
	})
}

// frame acts on one frame from the client (its payload still masked);
// false ends the connection.
func (c *wsConn) frame(h ws.Header, payload []byte) bool {
	if h.Masked {
		ws.Cipher(payload, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		c.enqueue(wsFrame{head: controlFrame(ws.OpPong, payload)})
		return true
	case ws.OpPong:
		return true
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameData(payload)
		if code == 0 {
			code = ws.StatusNormalClosure
		}
		c.close(code, "")
		return false
	case ws.OpBinary:
		c.close(CloseBadMessage, "Binary messages are not supported")
		return false
	}
	if int64(len(c.message))+int64(len(payload)) > c.t.maxMessage {
		c.close(ws.StatusMessageTooBig, "message too big")
		return false
	}
	c.message = append(c.message, payload...)
	if !h.Fin {
		return true
	}
	message := c.message
	c.message = nil
	return c.handle(message)
}

// finish releases the connection once reading stopped (or, for a polled
// connection, once the socket is closed). It runs once.
func (c *wsConn) finish() { c.finished.Do(c.release) }

// release is finish's work.
func (c *wsConn) release() {
	defer c.t.conns.leave()
	defer c.t.conns.untrack(c)
	c.mu.Lock()
	ops := c.ops
	c.ops = map[string]*operation{}
	for _, tm := range c.timers {
		tm.Stop()
	}
	hooked := c.hooked
	p := c.principal
	unlimit := c.unlimit
	if c.stopExpiry != nil {
		c.stopExpiry()
	}
	session := c.session
	c.mu.Unlock()
	if session != "" {
		c.t.hub.CloseSession(session)
	}
	if unlimit != nil {
		unlimit()
	}
	for _, op := range ops {
		op.stop(c.t.hub)
	}
	c.cancel()
	// The writer closes the socket after the close frame; give it the
	// write timeout, then close it anyway.
	c.closeSoon()
	if hooked && c.t.rt.hooks != nil {
		c.t.rt.hooks.Disconnected(auth.WithPrincipal(context.Background(), p))
	}
}

// after runs f after d unless the connection ends first; d <= 0 never.
func (c *wsConn) after(d time.Duration, f func()) {
	if d <= 0 {
		return
	}
	tm := time.AfterFunc(d, f)
	c.mu.Lock()
	c.timers = append(c.timers, tm)
	c.mu.Unlock()
}

// message is a message of either subprotocol.
type message struct {
	ID      json.RawMessage `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// handle acts on one client message; false ends the connection.
func (c *wsConn) handle(data []byte) bool {
	var m message
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		return c.protocolError("Invalid message received")
	}
	if c.legacy {
		return c.handleLegacy(&m)
	}
	switch m.Type {
	case "connection_init":
		return c.init(m.Payload)
	case "ping":
		c.send(envelope("pong", "", m.Payload))
		return true
	case "pong":
		c.mu.Lock()
		c.lastPong = time.Now()
		c.mu.Unlock()
		return true
	case "subscribe":
		id, ok := operationID(m.ID)
		if !ok {
			return c.protocolError("Invalid message received")
		}
		c.mu.Lock()
		acked := c.acked
		_, exists := c.ops[id]
		c.mu.Unlock()
		switch {
		case !acked:
			c.close(CloseUnauthorized, "Unauthorized")
			return false
		case exists:
			c.close(CloseSubscriberExists, "Subscriber for "+id+" already exists")
			return false
		}
		params, ok := decodeParams(m.Payload)
		if !ok {
			return c.protocolError("Invalid message received")
		}
		c.start(id, params)
		return true
	case "complete":
		id, ok := operationID(m.ID)
		if !ok {
			return c.protocolError("Invalid message received")
		}
		c.stop(id)
		return true
	}
	return c.protocolError("Invalid message received")
}

// handleLegacy acts on one message of the legacy graphql-ws protocol.
func (c *wsConn) handleLegacy(m *message) bool {
	switch m.Type {
	case "connection_init":
		return c.init(m.Payload)
	case "connection_terminate":
		c.close(ws.StatusNormalClosure, "")
		return false
	case "start":
		id, ok := operationID(m.ID)
		c.mu.Lock()
		acked := c.acked
		_, exists := c.ops[id]
		c.mu.Unlock()
		params, valid := decodeParams(m.Payload)
		switch {
		case !ok || !acked || exists:
			c.send(envelope("error", id, errorPayload(apperr.New(apperr.BadRequest, "invalid start message"))))
		case !valid:
			c.send(envelope("error", id, errorPayload(apperr.New(apperr.BadRequest, "invalid payload"))))
		default:
			c.start(id, params)
		}
		return true
	case "stop":
		if id, ok := operationID(m.ID); ok {
			c.stop(id)
		}
		return true
	}
	c.send(envelope("error", "", errorPayload(apperr.New(apperr.BadRequest, "unknown message type %s", strconv.Quote(m.Type)))))
	return true
}

// decodeParams decodes a subscribe payload, numbers kept exact as gqlgen
// wants them; false when it is not an object with a query.
func decodeParams(payload json.RawMessage) (*graphql.RawParams, bool) {
	var params graphql.RawParams
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&params); err != nil || params.Query == "" {
		return nil, false
	}
	return &params, true
}

// protocolError closes a graphql-transport-ws connection with 4400.
func (c *wsConn) protocolError(reason string) bool {
	c.close(CloseBadMessage, reason)
	return false
}

// operationID reads a message id: a non-empty string.
func operationID(raw json.RawMessage) (string, bool) {
	var id string
	if len(raw) == 0 || json.Unmarshal(raw, &id) != nil || id == "" {
		return "", false
	}
	return id, true
}

// init authenticates the connection from its connection_init payload
// (authorization, Authorization or token) or, when the payload holds no
// token, from the Authorization header of the upgrade request. A
// connection without a valid token is closed with CloseForbidden.
func (c *wsConn) init(raw json.RawMessage) bool {
	c.mu.Lock()
	seen := c.initSeen
	c.initSeen = true
	c.mu.Unlock()
	if seen {
		if c.legacy {
			return true
		}
		c.close(CloseTooManyInits, "Too many initialisation requests")
		return false
	}
	payload := map[string]any{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &payload); err != nil {
			return c.refuse(apperr.New(apperr.Unauthenticated, "malformed connection_init payload"))
		}
	}
	p, err := c.t.rt.verifier.FromInitPayload(payload)
	if err != nil && !hasToken(payload) && c.hasHeaderPrincipal {
		p, err = c.headerPrincipal, nil
	}
	if err != nil {
		return c.refuse(err)
	}
	release, aerr := c.t.rt.limits.Connect(p)
	if aerr != nil {
		return c.refuseLimited(aerr)
	}
	session := c.t.hub.OpenSession(c)
	p.Session = session
	c.mu.Lock()
	c.acked, c.hooked, c.lastPong, c.unlimit, c.session = true, c.t.rt.hooks != nil, time.Now(), release, session
	c.mu.Unlock()
	c.setPrincipal(p)
	if c.t.rt.hooks != nil {
		if err := c.t.rt.hooks.Connected(auth.WithPrincipal(c.ctx, p)); err != nil {
			c.t.rt.log.ErrorContext(c.ctx, "websocket connected hook", "identity", p.Identity, "err", err)
		}
	}
	c.send(envelope("connection_ack", "", nil))
	c.keepAlive()
	return true
}

// setPrincipal makes p the connection's caller, for the operations that
// start from then on, and closes the connection when p's token expires
// (with the verifier's leeway, as a handshake would refuse it then), on
// the hub's clock. A refreshed token of the same identity replaces the
// previous one this way (see Renew), and moves the expiry.
func (c *wsConn) setPrincipal(p auth.Principal) {
	clock := c.t.hub.Clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.principal = p
	if c.stopExpiry != nil {
		c.stopExpiry()
	}
	c.stopExpiry = clock.AfterFunc(p.ExpiresAt.Add(c.t.rt.verifier.Leeway()).Sub(clock.Now()), c.expired)
}

var _ hub.Renewer = (*wsConn)(nil)

// Renew implements hub.Renewer: refreshSession, sent over this connection,
// checked a fresh token of the caller's identity (an auth.Principal) and
// hands it over. Operations that start from then on run with it, and the
// connection closes when it expires instead of the previous one;
// subscriptions already running go on.
func (c *wsConn) Renew(credential any) {
	if p, ok := credential.(auth.Principal); ok {
		c.setPrincipal(p)
	}
}

// refuse closes a connection whose token was refused.
func (c *wsConn) refuse(err error) bool {
	reason := closeReason(err)
	if c.legacy {
		c.send(envelope("connection_error", "", errorPayload(apperr.New(apperr.Unauthenticated, "%s", reason))))
	}
	c.close(CloseForbidden, reason)
	return false
}

// refuseLimited closes a connection over its user's connection limits
// with CloseRateLimited; a legacy graphql-ws client gets a
// connection_error with the error's code and retryAfter first.
func (c *wsConn) refuseLimited(e *apperr.Error) bool {
	if c.legacy {
		c.send(envelope("connection_error", "", errorPayload(e)))
	}
	c.close(CloseRateLimited, closeReason(e))
	return false
}

// expired closes the connection when its token expires (with the same
// leeway as the handshake): no complete for its subscriptions, so that
// clients reconnect with a fresh token.
func (c *wsConn) expired() {
	if c.legacy {
		c.send(envelope("connection_error", "", errorPayload(apperr.New(apperr.Unauthenticated, "token expired"))))
	}
	c.close(CloseForbidden, "token expired")
}

// keepAlive pings graphql-transport-ws clients (and closes those that
// stop answering), or sends legacy clients "ka", with one timer each.
func (c *wsConn) keepAlive() {
	interval := c.t.opts.PingPong
	if c.legacy {
		interval = c.t.opts.KeepAlive
	}
	if interval <= 0 {
		return
	}
	var tick func()
	tick = func() {
		if c.ctx.Err() != nil {
			return
		}
		if c.legacy {
			c.send(envelope("ka", "", nil))
		} else {
			c.mu.Lock()
			silent := time.Since(c.lastPong) > 2*interval
			c.mu.Unlock()
			if silent {
				c.close(ws.StatusGoingAway, "no pong")
				return
			}
			c.send(envelope("ping", "", nil))
		}
		c.after(interval, tick)
	}
	c.after(interval, tick)
}

// start runs an operation: a query or mutation gives one result, then
// complete; a subscription registers with the hub and runs until it ends.
// It runs on the reading goroutine, so one connection's operations start
// in order.
func (c *wsConn) start(id string, params *graphql.RawParams) {
	c.mu.Lock()
	p := c.principal
	subs := len(c.ops)
	c.mu.Unlock()
	ctx := graphql.StartOperationTrace(auth.WithPrincipal(c.ctx, p))
	params.ReadTime = graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		c.sendErrors(id, resp.Errors)
		return
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	if rc.Operation.Operation != ast.Subscription {
		c.once(id, ctx, rc)
		return
	}
	if subs >= c.t.opts.MaxSubscriptions {
		err := apperr.New(apperr.RateLimited, "too many subscriptions on this connection: at most %d at once", c.t.opts.MaxSubscriptions)
		c.sendResult(id, &graphql.Response{Errors: gqlerror.List{c.t.present(ctx, err)}})
		c.send(envelope("complete", id, nil))
		return
	}
	op := newOperation(ctx, id, c, rc)
	c.mu.Lock()
	c.ops[id] = op
	c.mu.Unlock()
	if refusal, ok := op.run(c.t.hub, c.exec, rc, c.t.rt.metrics); !ok {
		// The resolver refused: its error is the handler's one result.
		if refusal != nil {
			c.sendResult(id, refusal)
		}
		c.finishOp(id, op, nil)
	}
}

// once runs a query or mutation: one result, then complete.
func (c *wsConn) once(id string, ctx context.Context, rc *graphql.OperationContext) {
	handler, opCtx := c.exec.DispatchOperation(ctx, rc)
	for {
		resp := handler(opCtx)
		if resp == nil {
			break
		}
		c.sendResult(id, resp)
	}
	c.send(envelope("complete", id, nil))
}

// stop ends operation id from the client's side, and confirms it with
// complete, as gqlgen and subscriptions-transport-ws do (graphql-ws
// clients ignore it).
func (c *wsConn) stop(id string) {
	c.mu.Lock()
	op := c.ops[id]
	delete(c.ops, id)
	c.mu.Unlock()
	if op != nil {
		op.stop(c.t.hub)
		c.send(envelope("complete", id, nil))
	}
}

// finishOp forgets op and tells the client it is over: complete, or the
// error that ended it.
func (c *wsConn) finishOp(id string, op *operation, err error) {
	c.mu.Lock()
	current := c.ops[id] == op
	if current {
		delete(c.ops, id)
	}
	c.mu.Unlock()
	if !current {
		return
	}
	op.cancel()
	if err != nil {
		c.sendErrors(id, gqlerror.List{c.t.present(op.ctx, endError(err))})
		return
	}
	c.send(envelope("complete", id, nil))
}

// sendNext implements client.
func (c *wsConn) sendNext(_ string, quoted, payload []byte, replay bool) {
	typ := "next"
	if c.legacy {
		typ = "data"
	}
	// One allocation per delivery: the frame header and the envelope up
	// to the payload, which every subscriber of the group shares.
	envelope := len(`{"id":`) + len(quoted) + len(`,"type":"`) + len(typ) + len(`","payload":`)
	head := make([]byte, 0, maxTextHeader+envelope)
	head = appendTextHeader(head, envelope+len(payload)+len(closingBrace))
	head = append(head, `{"id":`...)
	head = append(head, quoted...)
	head = append(head, `,"type":"`...)
	head = append(head, typ...)
	head = append(head, `","payload":`...)
	f := wsFrame{head: head, body: payload, tail: closingBrace}
	if replay {
		c.waitRoom()
	}
	c.enqueue(f)
}

var closingBrace = []byte("}")

// endOperation implements client: the hub ended subscription id.
func (c *wsConn) endOperation(id string, err error) {
	c.mu.Lock()
	op := c.ops[id]
	c.mu.Unlock()
	if op != nil {
		c.finishOp(id, op, err)
	}
}

// sendResult sends one result (next, or data on legacy).
func (c *wsConn) sendResult(id string, resp *graphql.Response) {
	payload, err := json.Marshal(resp)
	if err != nil {
		c.t.rt.log.ErrorContext(c.ctx, "encode response", "err", err)
		return
	}
	c.sendNext(id, appendJSONString(nil, id), payload, false)
}

// sendErrors sends an error message for operation id: it ends the
// operation (no complete follows).
func (c *wsConn) sendErrors(id string, errs gqlerror.List) {
	payload, err := json.Marshal(errs)
	if err != nil {
		c.t.rt.log.ErrorContext(c.ctx, "encode errors", "err", err)
		return
	}
	c.send(envelope("error", id, payload))
}

// envelope encodes a protocol message.
func envelope(typ, id string, payload json.RawMessage) []byte {
	b := make([]byte, 0, 32+len(id)+len(payload))
	b = append(b, '{')
	if id != "" {
		b = append(b, `"id":`...)
		b = appendJSONString(b, id)
		b = append(b, ',')
	}
	b = append(b, `"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if len(payload) > 0 {
		b = append(b, `,"payload":`...)
		b = append(b, payload...)
	}
	return append(b, '}')
}

// appendJSONString appends s to b as a JSON string: an operation id is any
// string the client chose, and strconv's Go quoting is not JSON for
// control characters (\x00, \a).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// errorPayload encodes e as a GraphQL error: {"message", "extensions": {"code", …}}.
func errorPayload(e *apperr.Error) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"message": e.Message, "extensions": e.Extensions()}) // strings and integers encode
	return b
}

// send queues one text message.
func (c *wsConn) send(msg []byte) {
	c.enqueue(wsFrame{head: appendTextHeader(make([]byte, 0, maxTextHeader), len(msg)), body: msg})
}

// appendTextHeader appends the header of an unmasked final text frame of
// n bytes (RFC 6455, section 5.2).
func appendTextHeader(dst []byte, n int) []byte {
	const finText = 0x81 // FIN and opcode 1; a server's frames are not masked
	switch {
	case n < 126:
		return append(dst, finText, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, finText, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, finText, 127), uint64(n))
	}
}

// maxTextHeader is the largest frame header appendTextHeader writes.
const maxTextHeader = 10

// controlFrame returns a whole control frame.
func controlFrame(op ws.OpCode, payload []byte) []byte {
	var buf bytes.Buffer
	_ = ws.WriteFrame(&buf, ws.NewFrame(op, true, payload)) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// enqueue queues f for the writer without blocking. A queue that
// overflows closes the connection with CloseTryAgainLater: what it holds
// is dropped, the client reconnects and resumes.
func (c *wsConn) enqueue(f wsFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if c.queued >= c.t.opts.QueueLength && !f.last {
		c.queue, c.queued = nil, 0
		c.closing = true
		c.queue = append(c.queue, closeFrame(CloseTryAgainLater, "try again later: connection fell behind"))
		c.queued++
		c.t.conns.slow.Add(1)
		c.t.rt.log.WarnContext(c.ctx, "websocket closed as slow", "identity", c.principal.Identity, "queue", c.t.opts.QueueLength)
		c.wakeLocked()
		return
	}
	if f.last {
		c.closing = true
	}
	c.queue = append(c.queue, f)
	c.queued++
	c.wakeLocked()
}

// wakeLocked hands the connection to a writer if none has it: to the
// process's flusher when the socket can be written without blocking (the
// poller's sockets), else to a goroutine of its own. c.mu is held.
func (c *wsConn) wakeLocked() {
	if c.writing {
		return
	}
	c.writing = true
	if c.raw != nil && c.t.flusher != nil {
		c.t.flusher.add(c)
		return
	}
	go c.write()
}

// waitRoom waits until the queue is at most half full, or the connection
// ends: a replay keeps pace with the socket.
func (c *wsConn) waitRoom() {
	for {
		c.mu.Lock()
		room := c.queued < c.t.opts.QueueLength/2 || c.closing
		c.mu.Unlock()
		if room {
			return
		}
		select {
		case <-c.wakeup:
		case <-c.ctx.Done():
			return
		}
	}
}

// takeLocked moves the frames at the head of the queue, up to
// maxWriteBytes, into bufs (one write's worth) and says how many frames
// and bytes it took and whether the last of them ends the connection. With
// nothing queued the writer gives the connection up. c.mu is held.
func (c *wsConn) takeLocked(bufs net.Buffers) (_ net.Buffers, n, size int, last bool) {
	for _, f := range c.queue {
		if size > 0 && (size+len(f.head)+len(f.body)+len(f.tail) > maxWriteBytes || len(bufs)+3 > maxWriteVecs) {
			break
		}
		n++
		size += len(f.head) + len(f.body) + len(f.tail)
		bufs = append(bufs, f.head)
		if len(f.body) > 0 {
			bufs = append(bufs, f.body)
		}
		if len(f.tail) > 0 {
			bufs = append(bufs, f.tail)
		}
		if f.last {
			last = true
			break
		}
	}
	clear(c.queue[:n])
	c.queue = c.queue[n:]
	c.queued -= n
	if n == 0 {
		c.writing = false
		c.queue = nil
	}
	return bufs, n, size, last
}

// took wakes a replay waiting for room and counts one write of n frames
// and size bytes.
func (c *wsConn) took(n, size int) {
	select {
	case c.wakeup <- struct{}{}:
	default:
	}
	c.t.rt.metrics.ObserveWriteBatch("websocket", n, size)
}

// write drains the queue, each batch in one blocking write bounded by the
// write timeout, until it is empty; then the connection has no writer.
// It runs on a goroutine of its own.
func (c *wsConn) write() {
	var bufs net.Buffers
	for {
		c.mu.Lock()
		var n, size int
		var last bool
		bufs, n, size, last = c.takeLocked(bufs[:0])
		c.mu.Unlock()
		if n == 0 {
			return
		}
		c.took(n, size)
		if !c.writeBlocking(bufs, last) {
			return
		}
	}
}

// writeBlocking writes bufs, waiting for the socket at most the write
// timeout, and closes the connection when the write fails or stalls or
// after its last frame; false when the connection is closed.
func (c *wsConn) writeBlocking(bufs net.Buffers, last bool) bool {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.t.opts.WriteTimeout))
	if _, err := bufs.WriteTo(c.nc); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.t.conns.slow.Add(1)
			c.t.rt.log.WarnContext(c.ctx, "websocket write stalled; closing", "timeout", c.t.opts.WriteTimeout)
		}
		c.abort()
		return false
	}
	if last {
		c.abort()
		return false
	}
	return true
}

// flush is the flusher's turn at the connection: it writes one batch of
// the queue without waiting for the socket. The connection then goes back
// to the flusher while frames remain, or to a goroutine of its own when
// the socket took only part of the batch (the rest waits for room there,
// bounded by the write timeout), or has no writer once its queue is empty.
// bufs is the flusher's scratch space.
func (c *wsConn) flush(bufs net.Buffers) net.Buffers {
	c.mu.Lock()
	bufs, n, size, last := c.takeLocked(bufs[:0])
	c.mu.Unlock()
	if n == 0 {
		return bufs
	}
	c.took(n, size)
	written, err := writeNow(c.raw, bufs)
	switch {
	case err != nil && !errors.Is(err, syscall.EAGAIN):
		c.abort()
		return bufs
	case written < size:
		rest := unwritten(bufs, written)
		go func() {
			if c.writeBlocking(rest, last) {
				c.write()
			}
		}()
		return bufs
	case last:
		c.abort()
		return bufs
	}
	c.mu.Lock()
	more := c.queued > 0
	if !more {
		c.writing = false
		c.queue = nil
	}
	c.mu.Unlock()
	if more {
		c.t.flusher.add(c)
	}
	return bufs
}

// unwritten returns a copy of what of bufs remains after its first n bytes.
func unwritten(bufs net.Buffers, n int) net.Buffers {
	var rest net.Buffers
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		rest = append(rest, b[n:])
		n = 0
	}
	return rest
}

// abort closes the socket at once and stops the writer.
func (c *wsConn) abort() {
	c.mu.Lock()
	c.closing = true
	c.queue, c.queued = nil, 0
	c.writing = false
	c.mu.Unlock()
	_ = c.nc.Close()
	c.cancel()
	if c.raw != nil {
		// A polled socket gets no event once closed: end it here.
		c.t.poller.remove(c)
		go c.finish()
	}
}

// close queues a close frame; the socket closes once it is written.
func (c *wsConn) close(code ws.StatusCode, reason string) {
	c.enqueue(closeFrame(code, reason))
}

// closeSoon closes the socket if the writer has not within the write
// timeout.
func (c *wsConn) closeSoon() {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.queue = append(c.queue, closeFrame(ws.StatusNormalClosure, ""))
		c.queued++
		c.wakeLocked()
	}
	writing := c.writing
	c.mu.Unlock()
	if !writing {
		_ = c.nc.Close()
		return
	}
	time.AfterFunc(c.t.opts.WriteTimeout, func() { _ = c.nc.Close() })
}

// closeFrame returns a close frame that ends the connection once written.
func closeFrame(code ws.StatusCode, reason string) wsFrame {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	return wsFrame{head: controlFrame(ws.OpClose, ws.NewCloseFrameBody(code, reason)), last: true}
}

// shutdown closes the connection with CloseServiceRestart and no complete
// for its subscriptions.
func (c *wsConn) shutdown() { c.close(CloseServiceRestart, "service restart") }

// String names the connection in logs.
func (c *wsConn) String() string { return fmt.Sprintf("websocket %s", c.nc.RemoteAddr()) }

// realtime holds what the transports need of the application.
type realtime struct {
	verifier *auth.Verifier
	hooks    RealtimeHooks
	log      *slog.Logger
	// limits admits each connection of an identity (new and open
	// connections); nil admits all.
	limits *ratelimit.Limits
	// metrics records subscriptions and writes; nil records nothing.
	metrics *metrics.Metrics
}

// hasToken reports whether a connection_init payload holds a token in one of
// the keys auth.Verifier.FromInitPayload reads.
func hasToken(payload map[string]any) bool {
	for _, key := range []string{"authorization", "Authorization", "token"} {
		switch v := payload[key].(type) {
		case nil:
		case string:
			if strings.TrimSpace(v) != "" {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// closeReason is the close frame's reason for a refused connection: the
// client-safe message, within the 123 bytes a close frame allows.
func closeReason(err error) string {
	msg := "unauthenticated"
	if ae, ok := errors.AsType[*apperr.Error](err); ok {
		msg = ae.Message
	}
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}
