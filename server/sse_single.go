package server

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
)

// The graphql-sse protocol's single connection mode: one event stream
// carries the results of every operation of a client, which HTTP/1
// browsers need (they open at most six connections per host).
//
//   - PUT /graphql, authenticated, reserves a stream: 201 and its token as
//     text/plain. The reservation holds one of the user's realtime
//     connections (ratelimit.Limits.Connect) until the stream ends, and
//     lapses when no GET opens it within ReservationTimeout.
//   - GET /graphql with Accept: text/event-stream and the token (header
//     X-GraphQL-Event-Stream-Token, or ?token= for EventSource, which
//     cannot send headers) opens it: one GET per reservation.
//   - POST /graphql with the token runs the operation named by
//     extensions.operationId: 202, and its results go to the stream as
//     next events {"id", "payload"}, then complete {"id"}. An operation
//     posted before the stream opens waits in the stream's queue.
//   - DELETE /graphql?operationId=… with the token stops one: 200, and no
//     complete follows.
//
// Requests with a token must come from the user who reserved the stream
// (a GET may also come with no Authorization at all). When the stream
// ends (the client leaves, its queue overflows, a write stalls, the
// reserving token expires, the server shuts down) its operations stop
// without complete and its token is forgotten: the client reserves a new
// stream and posts its operations again.

// StreamTokenHeader is the request header that names a single-connection
// event stream (graphql-sse's TOKEN_HEADER_KEY); the URL parameter
// "token" does too.
const StreamTokenHeader = "X-GraphQL-Event-Stream-Token"

// ReservationTimeout is how long a reserved event stream waits for the GET
// that opens it; then the reservation lapses and its token is unknown.
const ReservationTimeout = 30 * time.Second

// errStreamEnded answers a request whose stream token is unknown, lapsed
// or ended (404).
var errStreamEnded = apperr.New(apperr.NotFound, "no event stream has this token (it may have ended): reserve one with PUT /graphql")

// reservation is what a single-connection stream adds to a stream; its
// fields are guarded by the stream's mu, save those set at creation.
type reservation struct {
	token    string    // set at creation
	identity string    // who reserved it; set at creation
	expires  time.Time // the reserving token's expiry, with leeway; set at creation
	lapses   time.Time // when the reservation lapses unless opened; set at creation
	ops      map[string]*sseOp
	open     bool        // a GET holds the stream
	release  func()      // the connection limit's; nil once released
	stop     func() bool // the pending timer: the reservation's lapse, then the token's expiry
}

// sseOp is one operation of a single-connection stream.
type sseOp struct {
	quoted  []byte     // the JSON-encoded operation id
	op      *operation // nil for a query or mutation
	started bool       // the subscription runs: whoever removes it stops it
}

// streamToken is the single-connection stream token of r, or "".
func streamToken(r *http.Request) string {
	if tok := r.Header.Get(StreamTokenHeader); tok != "" {
		return tok
	}
	if r.URL.RawQuery == "" {
		return ""
	}
	return r.URL.Query().Get("token")
}

// reserve answers PUT: a new stream, 201 and its token.
func (t *sseTransport) reserve(w http.ResponseWriter, r *http.Request) {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		apperr.WriteHTTP(w, http.StatusUnauthorized, apperr.New(apperr.Unauthenticated, "reserving an event stream needs a token: Authorization: Bearer <token>"))
		return
	}
	release, aerr := t.rt.limits.Connect(p)
	if aerr != nil {
		apperr.WriteHTTP(w, http.StatusTooManyRequests, aerr)
		return
	}
	token := rand.Text()
	clock := t.hub.Clock()
	s := &sseStream{t: t, ctx: context.WithoutCancel(r.Context()), wakeup: make(chan struct{}, 1), reservation: &reservation{
		token: token, identity: p.Identity, expires: p.ExpiresAt.Add(t.rt.verifier.Leeway()),
		lapses: clock.Now().Add(ReservationTimeout), ops: map[string]*sseOp{}, release: release,
	}}
	s.mu.Lock()
	s.stop = clock.AfterFunc(ReservationTimeout, func() { t.lapse(s) })
	s.mu.Unlock()
	t.mu.Lock()
	if t.streams == nil {
		t.streams = map[string]*sseStream{}
	}
	t.streams[token] = s
	t.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, token)
}

// lapse ends a reservation that no GET opened in time.
func (t *sseTransport) lapse(s *sseStream) {
	s.mu.Lock()
	open := s.open
	s.mu.Unlock()
	if !open {
		t.closeStream(s)
	}
}

// closeStream forgets s and stops its operations; it may run more than
// once.
func (t *sseTransport) closeStream(s *sseStream) {
	t.mu.Lock()
	if t.streams[s.token] == s {
		delete(t.streams, s.token)
	}
	t.mu.Unlock()
	s.mu.Lock()
	s.done = true
	ops := s.ops
	s.ops = map[string]*sseOp{}
	release, stop := s.release, s.stop
	s.release, s.stop = nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if release != nil {
		release()
	}
	for _, o := range ops {
		if o.started {
			o.op.stop(t.hub)
		}
	}
}

// stream finds the stream that r names and checks that r may use it,
// answering the refusal itself: 400 without a token, 404 for a token
// unknown (or whose stream has ended), 403 for another user's. anonymous
// allows a request without Authorization.
func (t *sseTransport) stream(w http.ResponseWriter, r *http.Request, anonymous bool) (*sseStream, bool) {
	token := streamToken(r)
	if token == "" {
		apperr.WriteHTTP(w, http.StatusBadRequest, apperr.New(apperr.BadRequest,
			"name the event stream with the header %s or the URL parameter token; PUT /graphql reserves one", StreamTokenHeader))
		return nil, false
	}
	t.mu.Lock()
	s := t.streams[token]
	t.mu.Unlock()
	if s == nil {
		apperr.WriteHTTP(w, http.StatusNotFound, errStreamEnded)
		return nil, false
	}
	p, ok := auth.FromContext(r.Context())
	if (ok || !anonymous) && p.Identity != s.identity {
		apperr.WriteHTTP(w, http.StatusForbidden, apperr.New(apperr.Forbidden, "this event stream was reserved by another user"))
		return nil, false
	}
	return s, true
}

// open answers GET: the reserved stream, written until it ends.
func (t *sseTransport) open(w http.ResponseWriter, r *http.Request) {
	s, ok := t.stream(w, r, true)
	if !ok {
		return
	}
	clock := t.hub.Clock()
	s.mu.Lock()
	switch {
	case s.open:
		s.mu.Unlock()
		apperr.WriteHTTP(w, http.StatusConflict, apperr.New(apperr.Conflict, "this event stream is open already"))
		return
	case s.done || !clock.Now().Before(s.lapses):
		s.mu.Unlock()
		t.closeStream(s)
		apperr.WriteHTTP(w, http.StatusNotFound, errStreamEnded)
		return
	}
	s.open, s.ctx = true, r.Context()
	lapse := s.stop
	s.stop = clock.AfterFunc(s.expires.Sub(clock.Now()), s.shutdown)
	s.mu.Unlock()
	lapse()
	defer t.closeStream(s)
	t.conns.track(s)
	defer t.conns.untrack(s)
	s.begin(w)
	s.comment(": open\n\n")
	s.pump(r.Context())
}

// execute answers POST with a token: 202 once the operation has started
// (a subscription is registered with the hub; a query or mutation has
// run), its results queued for the stream. Operation errors (a document
// that does not validate, a refused subscription) are results too.
func (t *sseTransport) execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	s, ok := t.stream(w, r, false)
	if !ok {
		return
	}
	params, status, aerr := postParams(r)
	if aerr != nil {
		apperr.WriteHTTP(w, status, aerr)
		return
	}
	id, _ := params.Extensions["operationId"].(string)
	if id == "" {
		apperr.WriteHTTP(w, http.StatusBadRequest, apperr.New(apperr.BadRequest, "extensions.operationId must name the operation: a non-empty string"))
		return
	}
	o, aerr, status := s.addOperation(id)
	if aerr != nil {
		apperr.WriteHTTP(w, status, aerr)
		return
	}
	params.Headers = r.Header
	now := graphql.Now()
	params.ReadTime = graphql.TraceTiming{Start: now, End: now}
	// The operation outlives this request: it ends with the stream, or
	// with DELETE.
	ctx := graphql.StartOperationTrace(context.WithoutCancel(r.Context()))
	defer w.WriteHeader(http.StatusAccepted)
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		s.send(id, exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		s.endOperation(id, nil)
		return
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	if rc.Operation.Operation != ast.Subscription {
		s.once(ctx, id, exec, rc)
		return
	}
	op := newOperation(ctx, id, s, rc)
	if aerr := s.setSubscription(o, op); aerr != nil {
		s.send(id, &graphql.Response{Errors: gqlerror.List{t.present(ctx, aerr)}})
		s.endOperation(id, nil)
		return
	}
	refusal, ok := op.run(t.hub, exec, rc, t.rt.metrics)
	if !ok {
		if refusal != nil {
			s.send(id, refusal)
		}
		s.endOperation(id, nil)
		return
	}
	s.mu.Lock()
	current := s.ops[id] == o
	o.started = current
	s.mu.Unlock()
	if !current {
		// Stopped (DELETE, or the stream ended) while it started.
		op.stop(t.hub)
	}
}

// addOperation reserves operation id on the stream: 409 when an
// operation of that id is running, 404 when the stream has ended.
func (s *sseStream) addOperation(id string) (*sseOp, *apperr.Error, int) {
	quoted := appendJSONString(nil, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.done:
		return nil, errStreamEnded, http.StatusNotFound
	case s.ops[id] != nil:
		return nil, apperr.New(apperr.Conflict, "an operation with this operationId is running on this event stream"), http.StatusConflict
	}
	o := &sseOp{quoted: quoted}
	s.ops[id] = o
	return o, nil, 0
}

// setSubscription makes o the subscription op, unless the stream runs as
// many as WebSocketOptions.MaxSubscriptions already (RATE_LIMITED).
func (s *sseStream) setSubscription(o *sseOp, op *operation) *apperr.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := 0
	for _, other := range s.ops {
		if other.op != nil {
			subs++
		}
	}
	if limit := s.t.opts.MaxSubscriptions; subs >= limit {
		return apperr.New(apperr.RateLimited, "too many subscriptions on this event stream: at most %d at once", limit)
	}
	o.op = op
	return nil
}

// stopOperation answers DELETE with a token and ?operationId=: the
// operation stops, without complete; 200 even when it has ended already.
func (t *sseTransport) stopOperation(w http.ResponseWriter, r *http.Request) {
	s, ok := t.stream(w, r, false)
	if !ok {
		return
	}
	id := r.URL.Query().Get("operationId")
	if id == "" {
		apperr.WriteHTTP(w, http.StatusBadRequest, apperr.New(apperr.BadRequest, "name the operation to stop with the URL parameter operationId"))
		return
	}
	s.mu.Lock()
	o := s.ops[id]
	delete(s.ops, id)
	s.mu.Unlock()
	if o != nil && o.started {
		o.op.stop(t.hub)
	}
	w.WriteHeader(http.StatusOK)
}
