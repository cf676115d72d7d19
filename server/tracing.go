package server

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/tracing"
)

// traceContext continues the trace of a request that carries W3C trace
// context (traceparent), so that the operation's span is a child of the
// caller's.
func traceContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") == "" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// operationSpans gives every GraphQL operation that validated a server
// span, "<type> <name>" (or the type alone for an anonymous one), which
// the database spans of its resolvers and the delivery spans of the events
// it publishes are children of. A query's or mutation's span ends with its
// response, with an error status carrying the first error's code; a
// subscription's ends once it is registered (or refused).
type operationSpans struct{ tracer trace.Tracer }

var (
	_ graphql.HandlerExtension     = operationSpans{}
	_ graphql.OperationInterceptor = operationSpans{}
)

// ExtensionName implements graphql.HandlerExtension.
func (operationSpans) ExtensionName() string { return "OperationSpans" }

// Validate implements graphql.HandlerExtension.
func (operationSpans) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation implements graphql.OperationInterceptor.
func (o operationSpans) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	rc := graphql.GetOperationContext(ctx)
	typ := string(rc.Operation.Operation)
	name := typ
	if rc.Operation.Name != "" {
		name += " " + rc.Operation.Name
	}
	ctx, span := o.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("graphql.operation.type", typ),
		attribute.String("graphql.operation.name", rc.Operation.Name),
	))
	handler := next(ctx)
	if rc.Operation.Operation == ast.Subscription {
		span.End()
		return handler
	}
	ended := false
	return func(ctx context.Context) *graphql.Response {
		resp := handler(ctx)
		if !ended {
			ended = true
			if resp != nil && len(resp.Errors) > 0 {
				code := errorCode(resp.Errors[0])
				span.SetAttributes(attribute.String("graphql.error.code", code))
				span.SetStatus(codes.Error, code)
			}
			span.End()
		}
		return resp
	}
}
