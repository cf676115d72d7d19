package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/parleychat/parley/metrics"
)

// instrument records each request that mux routes in
// parley_http_request_duration_seconds, labelled with the pattern that
// matched (a fixed set). WebSocket upgrades and event streams are
// connections, counted by the connection gauges instead.
func instrument(m *metrics.Metrics, mux *http.ServeMux) http.Handler {
	if m == nil {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" || (r.Method == http.MethodPost && strings.Contains(r.Header.Get("Accept"), "text/event-stream")) {
			mux.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(rec, r)
		// ServeMux sets the matched pattern on the request it routed.
		pattern := r.Pattern
		if pattern == "" {
			pattern = "unmatched"
		}
		m.ObserveHTTP(pattern, r.Method, rec.status, time.Since(start))
	})
}

// operationMetrics records every query and mutation, and every document
// refused before it ran, in parley_graphql_operation_duration_seconds:
// each has exactly one response. Subscriptions are recorded when they go
// live or are refused (observeSubscription); their events are not
// operations.
type operationMetrics struct{ m *metrics.Metrics }

var (
	_ graphql.HandlerExtension    = operationMetrics{}
	_ graphql.ResponseInterceptor = operationMetrics{}
)

// ExtensionName implements graphql.HandlerExtension.
func (operationMetrics) ExtensionName() string { return "OperationMetrics" }

// Validate implements graphql.HandlerExtension.
func (operationMetrics) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptResponse implements graphql.ResponseInterceptor.
func (o operationMetrics) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	rc := graphql.GetOperationContext(ctx)
	if rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		return resp
	}
	observeOperation(o.m, rc, resp)
	return resp
}

// observeOperation records rc, whose (first) response is resp: nil for a
// subscription that went live.
func observeOperation(m *metrics.Metrics, rc *graphql.OperationContext, resp *graphql.Response) {
	typ, name, valid := "unknown", "", rc.Operation != nil
	if valid {
		typ, name = string(rc.Operation.Operation), rc.Operation.Name
	}
	code := "OK"
	if resp != nil && len(resp.Errors) > 0 {
		code = errorCode(resp.Errors[0])
		if code == "" {
			code = "UNKNOWN"
		}
	}
	var d time.Duration
	if start := rc.Stats.OperationStart; !start.IsZero() {
		d = time.Since(start)
	}
	m.ObserveOperation(name, valid, typ, code, d)
}
