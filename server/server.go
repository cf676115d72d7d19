// Package server assembles Parley's HTTP handler: the GraphQL endpoint with
// its transports, limits and error presenter, health checks and the
// playground.
package server

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/graph"
	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/metrics"
	"github.com/parleychat/parley/playground"
	"github.com/parleychat/parley/ratelimit"
	"github.com/parleychat/parley/requestid"
	"github.com/parleychat/parley/resolvers"
	"github.com/parleychat/parley/tracing"
)

// Limits protect the server from costly requests. Zero fields take
// DefaultLimits.
type Limits struct {
	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64
	// MaxTokens caps the lexical tokens of a document; parsing stops there.
	MaxTokens int
	// MaxDepth caps the nesting of selection sets (introspection excluded).
	MaxDepth int
	// MaxAliases caps aliased fields in a document.
	MaxAliases int
	// MaxFields caps the field selections and fragment spreads written in
	// a document: validation compares same-named fields pairwise, so this
	// bounds its cost.
	MaxFields int
	// MaxFragments caps the fragment definitions of a document.
	MaxFragments int
	// MaxComplexity caps an operation's cost, where list fields multiply
	// their selection by their page size.
	MaxComplexity int
}

// DefaultLimits are the limits used where Config leaves them zero.
var DefaultLimits = Limits{
	MaxBodyBytes:  1 << 20,
	MaxTokens:     10_000,
	MaxDepth:      12,
	MaxAliases:    15,
	MaxFields:     1000,
	MaxFragments:  100,
	MaxComplexity: 10_000,
}

// Config is what NewHandler needs.
type Config struct {
	Chat     *chat.Service
	Verifier *auth.Verifier
	Logger   *slog.Logger
	Limits   Limits
	// DisableIntrospection turns schema introspection off.
	DisableIntrospection bool
	// WebSocket tunes the WebSocket transport; zero fields take
	// DefaultWebSocketOptions.
	WebSocket WebSocketOptions
	// Realtime, when not nil, learns when WebSocket connections open and
	// close.
	Realtime RealtimeHooks
	// RateLimits are the per-user limits of this node: mutations (refused
	// whole with RATE_LIMITED), new and open WebSocket and SSE
	// connections; nil limits nothing. Share it with the chat service,
	// which limits startTyping.
	RateLimits *ratelimit.Limits
	// RequestTimeout bounds an HTTP request's parsing, validation and
	// execution (not WebSocket or SSE streams); zero is
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Readiness lists conditions /readyz checks after the database answers.
	Readiness []ReadinessCheck
	// Hub is the node's realtime engine, the one Chat registers
	// subscriptions with.
	Hub *hub.Hub
	// Metrics, when not nil, records requests, operations and the
	// realtime transports' writes.
	Metrics *metrics.Metrics
	// ServeMetrics serves Metrics at /metrics on this handler.
	ServeMetrics bool
	// Tracer, when not nil, gives every GraphQL operation a span, which
	// continues the trace of a request that carries W3C trace context.
	Tracer trace.TracerProvider
	// CORSHeaders are request headers that pages from the allowed origins
	// may send to /graphql besides those always allowed (CORSAllowedHeaders).
	CORSHeaders []string
}

// ReadinessCheck is one condition of /readyz, such as "the database schema
// is current".
type ReadinessCheck struct {
	// Failure is the body of the 503 answer while the condition fails, such
	// as "database schema behind". Check's error goes to the log only.
	Failure string
	// Check returns nil while the condition holds. It must be safe for
	// concurrent use and honour ctx, which allows it 2 s.
	Check func(ctx context.Context) error
}

// DefaultRequestTimeout is the RequestTimeout used where Config leaves it
// zero.
const DefaultRequestTimeout = 15 * time.Second

// NewHandler returns Parley's HTTP handler:
//
//	/graphql   GraphQL over POST and GET (queries only over GET), and
//	           subscriptions over WebSocket (graphql-transport-ws and legacy
//	           graphql-ws) and server-sent events (POST with
//	           Accept: text/event-stream)
//	/healthz   200 while the process is up
//	/readyz    200 while the database answers and every Config.Readiness
//	           check passes, 503 otherwise
//	/media/    uploads (PUT) and attachments (GET) at signed URLs; see
//	           mediaHandler
//	/query     404 NOT_FOUND with a pointer to /graphql
//	/metrics   the Prometheus metrics, with Config.ServeMetrics
//	/          the GraphQL playground
//
// Every request gets an id (package requestid): its own X-Request-Id when
// sane, else a new one, echoed in the response's X-Request-Id and carried
// by its context into every log line logged with that context.
func NewHandler(cfg Config) *Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limits := withDefaults(cfg.Limits)

	mux := http.NewServeMux()
	conns := newConnections()
	gql := newGraphQL(cfg, log, limits, conns)
	allowCORS := corsPolicy(cfg.WebSocket.withDefaults().AllowedOrigins, cfg.CORSHeaders)
	mux.Handle("/graphql", allowCORS(limitBody(limits.MaxBodyBytes, cfg.Verifier.Middleware(gql))))
	// gqlgen's examples serve /query: point clients that try it here.
	mux.Handle("/query", allowCORS(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		apperr.WriteHTTP(w, http.StatusNotFound, apperr.New(apperr.NotFound, "Parley serves GraphQL at /graphql, not /query"))
	})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := append([]ReadinessCheck{{Failure: "database unavailable", Check: cfg.Chat.Ping}}, cfg.Readiness...)
		for _, c := range checks {
			if err := c.Check(ctx); err != nil {
				log.ErrorContext(ctx, "readiness check failed", "failure", c.Failure, "err", err)
				writeText(w, http.StatusServiceUnavailable, c.Failure)
				return
			}
		}
		writeText(w, http.StatusOK, "ready")
	})
	mux.Handle(chat.MediaPathPrefix, mediaCORS(cfg.WebSocket.withDefaults().AllowedOrigins)(mediaHandler(cfg.Chat, log)))
	if cfg.Metrics != nil && cfg.ServeMetrics {
		mux.Handle("GET /metrics", cfg.Metrics.Handler())
	}
	mux.Handle("/", playground.Handler("Parley", "/graphql"))
	var h http.Handler = logRequests(log, instrument(cfg.Metrics, mux))
	if cfg.Tracer != nil {
		h = traceContext(h)
	}
	return &Handler{Handler: requestid.Middleware(h), conns: conns}
}

func withDefaults(l Limits) Limits {
	d := DefaultLimits
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = d.MaxTokens
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxAliases <= 0 {
		l.MaxAliases = d.MaxAliases
	}
	if l.MaxFields <= 0 {
		l.MaxFields = d.MaxFields
	}
	if l.MaxFragments <= 0 {
		l.MaxFragments = d.MaxFragments
	}
	if l.MaxComplexity <= 0 {
		l.MaxComplexity = d.MaxComplexity
	}
	return l
}

// newGraphQL builds the gqlgen server with Parley's transports and limits.
func newGraphQL(c Config, log *slog.Logger, limits Limits, conns *connections) *handler.Server {
	svc := c.Chat
	ws := c.WebSocket.withDefaults()
	// The public schema: what introspection shows has no gqlgen directives.
	cfg := graph.Config{Resolvers: &resolvers.Resolver{Chat: svc}, Schema: graph.PublicSchema()}
	setComplexity(&cfg.Complexity, svc.Limits().DefaultPageSize)
	es := graph.NewExecutableSchema(cfg)
	srv := handler.New(es)
	present := presentError(log)
	rt := &realtime{verifier: c.Verifier, hooks: c.Realtime, log: log, limits: c.RateLimits, metrics: c.Metrics}
	poller := newPoller(log)
	// The first transport that supports a request serves it: WebSocket
	// upgrades (GET with Upgrade) and SSE (POST with Accept:
	// text/event-stream) come before plain GET and POST, which refuse
	// subscriptions.
	for _, t := range []graphql.Transport{
		&wsTransport{poller: poller, flusher: newFlusher(poller), rt: rt, hub: c.Hub, opts: ws, maxMessage: limits.MaxBodyBytes, conns: conns, present: present},
		&sseTransport{rt: rt, hub: c.Hub, opts: ws, conns: conns, present: present},
		transport.Options{AllowedMethods: strings.Split(allowedMethods, ", ")},
		httpTransport{timeout: cmp.Or(c.RequestTimeout, DefaultRequestTimeout), log: log},
	} {
		srv.AddTransport(presentedTransport{Transport: t, present: present})
	}
	docs := lru.New[*ast.QueryDocument](1000)
	srv.SetQueryCache(docs)
	srv.SetParserTokenLimit(limits.MaxTokens)
	srv.SetErrorPresenter(present)
	srv.SetRecoverFunc(recoverPanic(log))
	// Persisted queries first: the document limit checks the query they
	// fill in.
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](100)})
	srv.Use(&documentLimit{limits: limits, es: es, docs: docs})
	srv.Use(textCheck{})
	srv.Use(mutationLimit{limits: c.RateLimits, present: present})
	if c.DisableIntrospection {
		srv.AroundRootFields(refuseIntrospection)
	} else {
		srv.Use(extension.Introspection{})
	}
	srv.AroundResponses(capErrors(present))
	if c.Metrics != nil {
		srv.Use(operationMetrics{m: c.Metrics})
	}
	if c.Tracer != nil {
		srv.Use(operationSpans{tracer: c.Tracer.Tracer(tracing.Name)})
	}
	srv.AroundResponses(freshLoaders(svc))
	return srv
}

// refuseIntrospection answers __schema and __type with FORBIDDEN when
// introspection is off.
func refuseIntrospection(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	if fc := graphql.GetRootFieldContext(ctx); fc != nil && (fc.Field.Name == "__schema" || fc.Field.Name == "__type") {
		graphql.AddError(ctx, apperr.New(apperr.Forbidden, "introspection is disabled on this server"))
		return graphql.Null
	}
	return next(ctx)
}

// freshLoaders gives every response its own loaders: a query's or
// mutation's whole execution, or one subscription event (see
// chat.Service.NewEventLoaders). Loaders cache for their lifetime, so
// loaders living as long as a WebSocket connection would serve stale rows
// (and memberships of the past) to every later event.
func freshLoaders(svc *chat.Service) graphql.ResponseMiddleware {
	return func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		if graphql.HasOperationContext(ctx) {
			if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Operation == ast.Subscription {
				return next(chat.WithLoaders(ctx, svc.NewEventLoaders()))
			}
		}
		return next(chat.WithLoaders(ctx, svc.NewLoaders()))
	}
}

// limitBody caps the request body. A body over the limit, with or without a
// Content-Length, gets 413 and a GraphQL error that names the limit; the
// body is read whole first (gqlgen reads it whole anyway) so that the
// overflow is seen here rather than as a decoding error.
func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		tooLarge := func() {
			apperr.WriteHTTP(w, http.StatusRequestEntityTooLarge, apperr.New(apperr.BadUserInput, "request body is over the limit of %d bytes", n))
		}
		if r.ContentLength > n {
			tooLarge()
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, n))
		if _, over := errors.AsType[*http.MaxBytesError](err); over {
			tooLarge()
			return
		}
		if err != nil {
			apperr.WriteHTTP(w, http.StatusBadRequest, apperr.New(apperr.BadRequest, "could not read the request body"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}
