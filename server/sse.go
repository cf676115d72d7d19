package server

import (
	"context"
	"encoding/json"
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
// protocol's distinct-connections mode: POST with Accept:
// text/event-stream and the usual JSON body; each result is an event
// "next", the end an event "complete". One goroutine per stream, the
// request's own, writes it.
type sseTransport struct {
	rt      *realtime
	hub     *hub.Hub
	opts    WebSocketOptions
	conns   *connections
	present graphql.ErrorPresenterFunc
}

var _ graphql.Transport = (*sseTransport)(nil)

// Supports implements graphql.Transport.
func (t *sseTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// sseStream is one event stream: the operation's client.
type sseStream struct {
	t      *sseTransport
	ctx    context.Context // the request's, for its log lines
	w      http.ResponseWriter
	rc     *http.ResponseController
	wakeup chan struct{}

	mu      sync.Mutex
	queue   [][]byte
	done    bool // nothing more is written: complete, or the stream ends
	compl   bool // the stream ends with complete
	dropped bool // the queue overflowed
}

// Do implements graphql.Transport.
func (t *sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !t.conns.enter() {
		writeText(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	defer t.conns.leave()
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
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseStream{t: t, ctx: r.Context(), w: w, rc: http.NewResponseController(w), wakeup: make(chan struct{}, 1)}
	s.flush()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ctx = graphql.StartOperationTrace(ctx)
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		s.result(exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		s.complete()
		return
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	if rc.Operation.Operation != ast.Subscription {
		handler, opCtx := exec.DispatchOperation(ctx, rc)
		for resp := handler(opCtx); resp != nil; resp = handler(opCtx) {
			s.result(resp)
		}
		s.complete()
		return
	}
	t.conns.track(s)
	defer t.conns.untrack(s)
	op := newOperation(ctx, "sse", s, rc)
	defer op.stop(t.hub)
	if refusal, ok := op.run(t.hub, exec, rc, t.rt.metrics); !ok {
		if refusal != nil {
			s.result(refusal)
		}
		s.complete()
		return
	}
	s.live()
	if p, ok := auth.FromContext(r.Context()); ok {
		clock := t.hub.Clock()
		stop := clock.AfterFunc(p.ExpiresAt.Add(t.rt.verifier.Leeway()).Sub(clock.Now()), func() { s.endOperation("", nil) })
		defer stop()
	}
	s.pump(ctx)
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
				s.complete()
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
func (s *sseStream) write(batch [][]byte) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.t.opts.WriteTimeout))
	var buf []byte
	for _, payload := range batch {
		buf = append(buf, "event: next\ndata: "...)
		buf = append(buf, payload...)
		buf = append(buf, "\n\n"...)
	}
	s.t.rt.metrics.ObserveWriteBatch("sse", len(batch), len(buf))
	if _, err := s.w.Write(buf); err != nil {
		return false
	}
	return s.flush()
}

func (s *sseStream) flush() bool { return s.rc.Flush() == nil }

// result writes one response at once (before the stream is live).
func (s *sseStream) result(resp *graphql.Response) {
	payload, err := json.Marshal(resp)
	if err != nil {
		s.t.rt.log.ErrorContext(s.ctx, "encode response", "err", err)
		return
	}
	s.write([][]byte{payload})
}

// live writes the comment ": live": the subscription is registered with
// the hub and its topics followed, so what is published from now on
// reaches it (a replay, queued already, follows). Event-stream clients
// ignore comments; tests and tools wait for it instead of guessing.
func (s *sseStream) live() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.t.opts.WriteTimeout))
	if _, err := s.w.Write([]byte(": live\n\n")); err == nil {
		s.flush()
	}
}

// complete writes the complete event.
func (s *sseStream) complete() {
	if _, err := s.w.Write([]byte("event: complete\ndata:\n\n")); err == nil {
		s.flush()
	}
}

// sendNext implements client: it queues payload. A stream whose queue
// overflows ends without complete; the client resumes.
func (s *sseStream) sendNext(_ string, payload []byte, replay bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if len(s.queue) >= s.t.opts.QueueLength {
		s.done, s.queue = true, nil
		s.t.conns.slow.Add(1)
		s.t.rt.log.WarnContext(s.ctx, "event stream ended as slow", "queue", s.t.opts.QueueLength)
	} else {
		s.queue = append(s.queue, payload)
	}
	s.wake()
}

// endOperation implements client: the stream completes. An error that
// ends a subscription is not sent over SSE (graphql-sse has no message
// for it): subscribing again tells why.
func (s *sseStream) endOperation(_ string, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done, s.compl = true, true
		s.wake()
	}
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
