package server

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
)

// plainHTTP is gqlgen's POST or GET transport, which answers once: a
// subscription sent to it gets HTTP 400 with a BAD_REQUEST error naming
// the transports that carry subscriptions, instead of waiting for its
// first event.
type plainHTTP struct{ graphql.Transport }

// errSubscriptionTransport is the error of a subscription over plain HTTP.
var errSubscriptionTransport = apperr.New(apperr.BadRequest,
	"subscriptions need a streaming transport: a WebSocket to /graphql (subprotocol graphql-transport-ws or graphql-ws), or server-sent events (POST with Accept: text/event-stream)")

// Do implements graphql.Transport.
func (p plainHTTP) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	refused := &refuseSubscriptions{GraphExecutor: exec}
	p.Transport.Do(&statusOverride{ResponseWriter: w, refused: refused}, r, refused)
}

// refuseSubscriptions is a GraphExecutor whose operation contexts fail
// for subscriptions.
type refuseSubscriptions struct {
	graphql.GraphExecutor
	refused bool
}

// CreateOperationContext implements graphql.GraphExecutor.
func (e *refuseSubscriptions) CreateOperationContext(ctx context.Context, params *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	rc, errs := e.GraphExecutor.CreateOperationContext(ctx, params)
	if errs == nil && rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		e.refused = true
		return rc, gqlerror.List{{Message: errSubscriptionTransport.Message, Err: errSubscriptionTransport}}
	}
	return rc, errs
}

// statusOverride answers 400 once a subscription was refused.
type statusOverride struct {
	http.ResponseWriter
	refused *refuseSubscriptions
}

// WriteHeader implements http.ResponseWriter.
func (w *statusOverride) WriteHeader(status int) {
	if w.refused.refused {
		status = http.StatusBadRequest
	}
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusOverride) Unwrap() http.ResponseWriter { return w.ResponseWriter }
