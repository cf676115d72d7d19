package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/metrics"
)

// How a realtime transport runs a GraphQL operation, and how a
// subscription's events reach it.
//
// gqlgen calls a subscription resolver with nothing but a context, and
// reads the channel it returns from the response handler that
// DispatchOperation gives the transport. Parley joins the two without a
// goroutine per subscription and without behaviour in the context:
//   - before dispatching, the transport registers the operation with the
//     node's hub (hub.Expect) and puts the returned ticket, plain data, in
//     the operation's context (hub.WithTicket);
//   - the resolver calls one chat method, which authorizes and registers a
//     hub.Spec for that ticket, and returns a channel that holds one value;
//   - the transport then starts the subscription (hub.Start): for each
//     value, the hub emits it into that channel and at once calls the
//     operation's Execute, which calls gqlgen's response handler: the read
//     finds the value waiting, the selection set runs, and the encoded
//     response is queued, once per group of operations with the same key.
//
// So gqlgen still parses, validates and executes every operation, and the
// only goroutines are the connection's own.

// client is a realtime connection (WebSocket or SSE stream) as an
// operation sees it.
type client interface {
	// sendNext queues a result payload for operation id, whose JSON
	// encoding is quoted; during a replay it may wait for room in the
	// queue.
	sendNext(id string, quoted, payload []byte, replay bool)
	// endOperation says operation id is over: err nil completes it.
	endOperation(id string, err error)
}

// operation is one subscription of a client: the hub's hub.Operation.
type operation struct {
	id      string
	quoted  []byte // id as a JSON string, encoded once for every delivery
	c       client
	key     string
	ctx     context.Context
	cancel  context.CancelFunc
	handler graphql.ResponseHandler
	ticket  hub.Ticket
}

// newOperation returns a subscription operation of client c.
func newOperation(ctx context.Context, id string, c client, rc *graphql.OperationContext) *operation {
	key, ok := operationKey(ctx, rc)
	if !ok {
		key = "\x00unshared\x00" + id // never shared
	}
	op := &operation{id: id, quoted: appendJSONString(nil, id), c: c, key: key}
	op.ctx, op.cancel = context.WithCancel(ctx)
	return op
}

// run dispatches the operation, which calls the resolver (which registers
// the subscription with the hub), then starts it: replay, then live
// events. It returns false when the resolver refused, with the response
// that holds the error. m records the subscription as an operation.
func (o *operation) run(h *hub.Hub, exec graphql.GraphExecutor, rc *graphql.OperationContext, m *metrics.Metrics) (*graphql.Response, bool) {
	o.ticket = h.Expect(o)
	handler, ctx := exec.DispatchOperation(hub.WithTicket(o.ctx, o.ticket), rc)
	o.handler, o.ctx = handler, ctx
	if err := h.Start(o.ticket); errors.Is(err, hub.ErrNotSubscribed) {
		refusal := handler(ctx)
		observeOperation(m, rc, refusal)
		return refusal, false
	}
	observeOperation(m, rc, nil)
	return nil, true
}

// stop ends the operation from the client's side.
func (o *operation) stop(h *hub.Hub) {
	h.Stop(o.ticket)
	o.cancel()
}

var _ hub.Operation = (*operation)(nil)

// errOperationDone is Execute's error once gqlgen ended the operation.
var errOperationDone = errors.New("operation ended")

// Key implements hub.Operation.
func (o *operation) Key() string { return o.key }

// Execute implements hub.Operation: it runs the selection set over the
// value the resolver's channel holds and encodes the response.
func (o *operation) Execute() ([]byte, error) {
	resp := o.handler(o.ctx)
	if resp == nil {
		return nil, errOperationDone
	}
	payload, err := json.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return payload, nil
}

// Send implements hub.Operation.
func (o *operation) Send(payload []byte, replay bool) { o.c.sendNext(o.id, o.quoted, payload, replay) }

// End implements hub.Operation.
func (o *operation) End(err error) { o.c.endOperation(o.id, err) }

// operationKey returns what identifies a subscription's result for a given
// value: its document, operation name and variables, and the viewer when
// a selected field depends on the viewer (@perViewer in the schema). It
// returns false when the variables cannot be encoded.
func operationKey(ctx context.Context, oc *graphql.OperationContext) (string, bool) {
	vars, err := json.Marshal(oc.Variables) // map keys come out sorted
	if err != nil {
		return "", false
	}
	key := oc.RawQuery + "\x00" + oc.OperationName + "\x00" + string(vars)
	if perViewer(oc.Operation.SelectionSet) {
		p, _ := auth.FromContext(ctx)
		key += "\x00" + p.Identity
	}
	return key, true
}

// perViewerDirective marks, in the schema, the fields whose value depends
// on who asks: a subscription selecting one gets results of its own.
const perViewerDirective = "perViewer"

// perViewer reports whether set, through its fragments and
// sub-selections, selects a field marked @perViewer.
func perViewer(set ast.SelectionSet) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Definition != nil && s.Definition.Directives.ForName(perViewerDirective) != nil {
				return true
			}
			if perViewer(s.SelectionSet) {
				return true
			}
		case *ast.InlineFragment:
			if perViewer(s.SelectionSet) {
				return true
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || perViewer(s.Definition.SelectionSet) {
				return true
			}
		}
	}
	return false
}

// endError is what a client is told when a subscription ends with err:
// the rules' own error, or a coded one for the hub's.
func endError(err error) error {
	switch {
	case errors.Is(err, hub.ErrSlowConsumer):
		return apperr.New(apperr.RateLimited, "subscription fell behind and was ended; subscribe again (messageAdded: with afterIndex of the last message received)")
	case errors.Is(err, hub.ErrClosed):
		return apperr.New(apperr.Internal, "server is shutting down; subscribe again")
	}
	return err
}
