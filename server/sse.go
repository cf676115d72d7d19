package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/hub"
)

// sseTransport is GraphQL over server-sent events, the graphql-sse
// protocol in both of its modes:
//
//   - distinct connections: POST with Accept: text/event-stream and the
//     usual JSON body; each result is an event "next", the end an event
//     "complete";
//   - single connection: PUT reserves a stream and answers its token, a GET
//     with that token opens it, each POST with the token runs one operation
//     (extensions.operationId) whose results are events of that stream,
//     and DELETE stops one (see sse_single.go).
//
// Either way one goroutine per stream, the request's own, writes it.
type sseTransport struct {
	rt      *realtime
	hub     *hub.Hub
	opts    WebSocketOptions
	conns   *connections
	present graphql.ErrorPresenterFunc

	mu      sync.Mutex
	streams map[string]*sseStream // single-connection streams by token
}

var _ graphql.Transport = (*sseTransport)(nil)

// Supports implements graphql.Transport: POST with Accept:
// text/event-stream or a stream token, GET with both, PUT and DELETE.
func (t *sseTransport) Supports(r *http.Request) bool {
	switch r.Method {
	case http.MethodPut, http.MethodDelete:
		return true
	case http.MethodGet:
		return acceptsEventStream(r) && streamToken(r) != ""
	case http.MethodPost:
		return acceptsEventStream(r) || streamToken(r) != ""
	}
	return false
}

func acceptsEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// sseEvent is one queued event: a result, or the end of an operation of
// a single-connection stream.
type sseEvent struct {
	// id is the JSON-encoded operation id on a single-connection stream,
	// nil on a distinct one.
	id []byte
	// payload is the encoded result; nil is the operation's complete.
	payload []byte
}

// sseStream is one event stream: the client of its operations (one in
// distinct connections mode, any number in single connection mode).
type sseStream struct {
	t      *sseTransport
	wakeup chan struct{}
	// w and rc are set before the stream's goroutine writes; a reserved
	// stream has them once opened.
	w  http.ResponseWriter
	rc *http.ResponseController

	mu    sync.Mutex
	ctx   context.Context // the writing request's, for its log lines
	queue []sseEvent
	done  bool // nothing more is written: complete, or the stream ends
	compl bool // the stream ends with complete (distinct mode)

	*reservation // single connection mode only; nil otherwise
}

// Do implements graphql.Transport.
func (t *sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !t.conns.enter() {
		writeText(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	defer t.conns.leave()
	switch {
	case r.Method == http.MethodPut:
		t.reserve(w, r)
	case r.Method == http.MethodGet:
		t.open(w, r)
	case r.Method == http.MethodDelete:
		t.stopOperation(w, r)
	case streamToken(r) != "":
		t.execute(w, r, exec)
	default:
		t.distinct(w, r, exec)
	}
}

// distinct runs one operation on a stream of its own.
func (t *sseTransport) distinct(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		apperr.WriteHTTP(w, http.StatusBadRequest, apperr.New(apperr.BadRequest, "could not read the request body"))
		return
	}
	params, aerr := decodeBody(body)
	if aerr != nil {
		apperr.WriteHTTP(w, http.StatusBadRequest, aerr)
		return
	}
	if p, ok := auth.FromContext(r.Context()); ok {
		release, aerr := t.rt.limits.Connect(p)
		if aerr != nil {
			apperr.WriteHTTP(w, http.StatusTooManyRequests, aerr)
			return
		}
		defer release()
	}
	params.Headers = r.Header
	now := graphql.Now()
	params.ReadTime = graphql.TraceTiming{Start: now, End: now}
	s := &sseStream{t: t, ctx: r.Context(), wakeup: make(chan struct{}, 1)}
	s.begin(w)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ctx = graphql.StartOperationTrace(ctx)
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		s.send("", exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		s.endOperation("", nil)
		s.pump(ctx)
		return
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	if rc.Operation.Operation != ast.Subscription {
		s.once(ctx, "", exec, rc)
		s.pump(ctx)
		return
	}
	t.conns.track(s)
	defer t.conns.untrack(s)
	op := newOperation(ctx, "sse", s, rc)
	defer op.stop(t.hub)
	if refusal, ok := op.run(t.hub, exec, rc, t.rt.metrics); !ok {
		if refusal != nil {
			s.send("", refusal)
		}
		s.endOperation("", nil)
		s.pump(ctx)
		return
	}
	s.comment(": live\n\n")
	// The token's expiry ends the stream without complete, as shutdown
	// does: graphql-sse clients take complete for the operation's end and
	// stay quiet, and a stream that just ends for a reconnect, which asks
	// the app for its headers, a fresh token, again.
	if p, ok := auth.FromContext(r.Context()); ok {
		clock := t.hub.Clock()
		stop := clock.AfterFunc(p.ExpiresAt.Add(t.rt.verifier.Leeway()).Sub(clock.Now()), s.shutdown)
		defer stop()
	}
	s.pump(ctx)
}

// begin answers 200 with the event-stream headers and flushes them.
func (s *sseStream) begin(w http.ResponseWriter) {
	s.w, s.rc = w, http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.flush()
}

// once runs a query or mutation: its results, then its complete, are
// queued for operation id.
func (s *sseStream) once(ctx context.Context, id string, exec graphql.GraphExecutor, rc *graphql.OperationContext) {
	handler, opCtx := exec.DispatchOperation(ctx, rc)
	for resp := handler(opCtx); resp != nil; resp = handler(opCtx) {
		s.send(id, resp)
	}
	s.endOperation(id, nil)
}

// pump writes queued events until the stream ends or the client leaves.
func (s *sseStream) pump(ctx context.Context) {
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		done, compl := s.done, s.compl
		s.mu.Unlock()
		if len(batch) > 0 && !s.write(batch) {
			return
		}
		if done {
			if compl {
				s.comment("event: complete\ndata:\n\n")
			}
			return
		}
		select {
		case <-s.wakeup:
		case <-ctx.Done():
			return
		}
	}
}

// write writes a batch of events and flushes them in one go; false when
// the client is gone or the write stalled.
func (s *sseStream) write(batch []sseEvent) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.t.opts.WriteTimeout))
	var buf []byte
	for _, e := range batch {
		switch {
		case e.id == nil:
			buf = append(buf, "event: next\ndata: "...)
			buf = append(buf, e.payload...)
		case e.payload == nil:
			buf = append(buf, "event: complete\ndata: {\"id\":"...)
			buf = append(buf, e.id...)
			buf = append(buf, '}')
		default:
			buf = append(buf, "event: next\ndata: {\"id\":"...)
			buf = append(buf, e.id...)
			buf = append(buf, `,"payload":`...)
			buf = append(buf, e.payload...)
			buf = append(buf, '}')
		}
		buf = append(buf, "\n\n"...)
	}
	s.t.rt.metrics.ObserveWriteBatch("sse", len(batch), len(buf))
	if _, err := s.w.Write(buf); err != nil {
		return false
	}
	return s.flush()
}

func (s *sseStream) flush() bool { return s.rc.Flush() == nil }

// send queues one result for operation id (before or while the stream
// is live).
func (s *sseStream) send(id string, resp *graphql.Response) {
	payload, err := json.Marshal(resp)
	if err != nil {
		s.mu.Lock()
		ctx := s.ctx
		s.mu.Unlock()
		s.t.rt.log.ErrorContext(ctx, "encode response", "err", err)
		return
	}
	s.sendNext(id, nil, payload, false)
}

// comment writes text at once: a comment line, or the final complete of
// a distinct stream. A comment ": live" says the subscription is
// registered with the hub and its topics followed, so what is published
// from now on reaches it (a replay, queued already, follows).
// Event-stream clients ignore comments; tests and tools wait for it
// instead of guessing.
func (s *sseStream) comment(text string) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.t.opts.WriteTimeout))
	if _, err := io.WriteString(s.w, text); err == nil {
		s.flush()
	}
}

// sendNext implements client: it queues payload for operation id (a
// single-connection stream keeps its operations' encoded ids). A stream
// whose queue overflows ends without complete; the client resumes.
func (s *sseStream) sendNext(id string, _, payload []byte, _ bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	var quoted []byte
	if s.reservation != nil {
		o := s.ops[id]
		if o == nil {
			return // stopped
		}
		quoted = o.quoted
	}
	s.enqueueLocked(sseEvent{id: quoted, payload: payload})
}

// enqueueLocked queues e, or ends the stream when its queue is full.
// s.mu is held.
func (s *sseStream) enqueueLocked(e sseEvent) {
	if len(s.queue) >= s.t.opts.QueueLength {
		s.done, s.queue = true, nil
		s.t.conns.slow.Add(1)
		s.t.rt.log.WarnContext(s.ctx, "event stream ended as slow", "queue", s.t.opts.QueueLength)
	} else {
		s.queue = append(s.queue, e)
	}
	s.wake()
}

// endOperation implements client. A distinct stream completes; on a
// single-connection stream operation id completes, unless the hub ended
// it for its own reasons (shutdown, a node that fell behind): then the
// whole stream ends, so that the client reconnects and subscribes again.
// An error that ends a subscription is not sent over SSE (graphql-sse has
// no message for it): subscribing again tells why.
func (s *sseStream) endOperation(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if s.reservation == nil {
		s.done, s.compl = true, true
		s.wake()
		return
	}
	o := s.ops[id]
	if o == nil {
		return
	}
	delete(s.ops, id)
	if o.op != nil {
		o.op.cancel()
	}
	if errors.Is(err, hub.ErrClosed) || errors.Is(err, hub.ErrSlowConsumer) {
		s.done = true
		s.wake()
		return
	}
	s.enqueueLocked(sseEvent{id: o.quoted})
}

// shutdown ends the stream without complete, so that clients reconnect.
func (s *sseStream) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done = true
		s.wake()
	}
}

func (s *sseStream) wake() {
	select {
	case s.wakeup <- struct{}{}:
	default:
	}
}
