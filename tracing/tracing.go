// Package tracing sets up OpenTelemetry tracing for Parley: a tracer
// provider exporting spans over OTLP/HTTP when the standard OTEL_…
// variables ask for it, and a no-op one otherwise; the database and
// event-delivery spans built on the hooks that package db and package hub
// offer; and the trace id on log lines.
//
// Spans of one request form one trace: the GraphQL operation's span
// (package server) is the parent of its database spans, and an event
// published by a mutation carries the operation's trace context through
// the broker (chat's wire format), so that the node delivering it starts
// its delivery span as a child of that operation, on whichever node it
// ran.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Name is the instrumentation scope of Parley's spans.
const Name = "github.com/parleychat/parley"

// Propagator reads and writes W3C trace context (traceparent,
// tracestate) and baggage.
var Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Provider is the process's tracer provider. Use New; a nil *Provider
// traces nothing.
type Provider struct {
	tp  trace.TracerProvider
	sdk *sdktrace.TracerProvider
}

// Config is what New reads besides the environment.
type Config struct {
	// Version is the service.version resource attribute.
	Version string
	// Instance is the service.instance.id resource attribute: this node.
	Instance string
}

// New returns the tracer provider the OTEL_… variables describe, read with
// getenv: spans go over OTLP/HTTP (protobuf) to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// or to OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended, and tracing
// is off (a no-op provider) when neither is set, when OTEL_SDK_DISABLED is
// true or when OTEL_TRACES_EXPORTER is none. Another exporter or protocol
// is an error naming its variable. The exporter's other settings
// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, certificates), the
// sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on), the batch
// processor (OTEL_BSP_…) and OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// are read by the OpenTelemetry SDK from the process environment.
// New connects to nothing.
func New(ctx context.Context, getenv func(string) string, cfg Config) (*Provider, error) {
	endpoint, err := endpointOf(getenv)
	if err != nil || endpoint == "" {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", "parley")}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	if cfg.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.Instance))
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return NewWithExporter(exp, res), nil
}

// NewWithExporter returns a Provider that batches spans to exp, for tests
// and for exporters of the caller's own.
func NewWithExporter(exp sdktrace.SpanExporter, res *resource.Resource) *Provider {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{tp: sdk, sdk: sdk}
}

// endpointOf returns the OTLP/HTTP traces URL the variables name, "" when
// tracing is off.
func endpointOf(getenv func(string) string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return "", nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "", "otlp":
	case "none":
		return "", nil
	default:
		return "", fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported; want otlp or none", exp)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(name)); p != "" {
			if p != "http/protobuf" {
				return "", fmt.Errorf("%s: %q is not supported; Parley exports over http/protobuf", name, p)
			}
			break
		}
	}
	if u := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); u != "" {
		return u, nil
	}
	if u := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); u != "" {
		return strings.TrimSuffix(u, "/") + "/v1/traces", nil
	}
	return "", nil
}

// TracerProvider returns the provider; a no-op one for a nil p.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p != nil }

// ForceFlush exports the spans ended so far.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// Shutdown exports the remaining spans and stops the provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// QueryObserver returns a database hook (db.QueryObserver) that records
// each statement run inside a traced request as a client span "db
// <kind>", a child of the request's span; statements outside any trace
// are not recorded. dialect is the store's (sqlite, postgres), recorded
// as db.system.name.
func QueryObserver(tp trace.TracerProvider, dialect string) func(ctx context.Context, kind string, begin time.Time, failed bool) {
	tracer := tp.Tracer(Name)
	system := dialect
	if dialect == "postgres" {
		system = "postgresql"
	}
	return func(ctx context.Context, kind string, begin time.Time, failed bool) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return
		}
		_, span := tracer.Start(ctx, "db "+kind, trace.WithTimestamp(begin), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", system), attribute.String("db.operation.name", kind)))
		if failed {
			span.SetStatus(codes.Error, "statement failed")
		}
		span.End()
	}
}

// ClientCalls returns a hook that records each call to a server of system
// (say "redis") made inside a traced request as a client span "<system>
// <operation>", a child of the request's span, ended when the call ends
// (with an error status when it failed); calls outside any trace are not
// recorded. It fits pubsub.Options.Trace and the Redis presence tracker's
// Options.Trace.
func ClientCalls(tp trace.TracerProvider, system string) func(ctx context.Context, operation string) func(error) {
	tracer := tp.Tracer(Name)
	return func(ctx context.Context, operation string) func(error) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return func(error) {}
		}
		_, span := tracer.Start(ctx, system+" "+operation, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", system), attribute.String("db.operation.name", operation)))
		return func(err error) {
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}

// DeliverHook returns a hub hook (hub.Options.Observe) that records the
// delivery of each event on this node as a consumer span "parley.deliver"
// whose parent is the trace context the event carries (traceParent
// returns its W3C traceparent, "" for none): the span of the operation
// that published it, on whichever node that ran. Events without trace
// context are not recorded.
func DeliverHook(tp trace.TracerProvider, traceParent func(ev any) string) func(topic string, ev any) func() {
	tracer := tp.Tracer(Name)
	return func(topic string, ev any) func() {
		tparent := traceParent(ev)
		if tparent == "" {
			return func() {}
		}
		ctx := Propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": tparent})
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return func() {}
		}
		_, span := tracer.Start(ctx, "parley.deliver", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", topic)))
		return func() { span.End() }
	}
}

// TraceParent returns the W3C traceparent of ctx's span, "" when ctx
// carries none.
func TraceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// LogKey is the attribute of the trace id on log lines.
const LogKey = "trace_id"

// LogAttrs returns the trace id of ctx's span, for logging.NewHandler:
// every line logged in a traced request carries it.
func LogAttrs(ctx context.Context) []slog.Attr {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return []slog.Attr{slog.String(LogKey, sc.TraceID().String())}
	}
	return nil
}
