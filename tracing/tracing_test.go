package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/logging"
	"github.com/parleychat/parley/tracing"
)

// TestNew: tracing is on only with an OTLP endpoint, off when disabled,
// and an exporter or protocol Parley does not speak is an error naming
// its variable.
func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		env     map[string]string
		enabled bool
		err     string
	}{
		{"no endpoint", map[string]string{}, false, ""},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, ""},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, ""},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, false, ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, false, ""},
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, ""},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"traces grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, false, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{"zipkin", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "zipkin"}, false, "OTEL_TRACES_EXPORTER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tracing.New(context.Background(), func(k string) string { return tc.env[k] }, tracing.Config{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = p.Shutdown(context.Background()) }()
			if p.Enabled() != tc.enabled {
				t.Fatalf("enabled %v, want %v", p.Enabled(), tc.enabled)
			}
		})
	}
}

// TestLogAttrs: a line logged in a traced context carries its trace id,
// next to the request id; other lines carry none.
func TestLogAttrs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(logging.NewHandler(&buf, logging.JSON, slog.LevelInfo, tracing.LogAttrs))
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.InfoContext(ctx, "traced")
	log.InfoContext(context.Background(), "untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) || strings.Contains(lines[1], "trace_id") {
		t.Fatalf("log lines:\n%s", buf.String())
	}
}

// TestClientCalls: a call inside a traced request is a client span under
// the request's span, failed calls have an error status, and calls
// outside any trace record nothing.
func TestClientCalls(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	calls := tracing.ClientCalls(tp, "redis")

	calls(context.Background(), "publish")(nil)
	if got := exp.GetSpans(); len(got) != 0 {
		t.Fatalf("a call outside any trace recorded %d spans", len(got))
	}

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	calls(ctx, "publish")(nil)
	calls(ctx, "hset")(errors.New("connection refused"))
	parent.End()

	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	for name, failed := range map[string]bool{"redis publish": false, "redis hset": true} {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span %q among %d", name, len(spans))
		}
		if s.Parent.SpanID() != parent.SpanContext().SpanID() || s.SpanKind != trace.SpanKindClient {
			t.Errorf("%s: parent %s kind %v; want the request's span and a client span", name, s.Parent.SpanID(), s.SpanKind)
		}
		if (s.Status.Code == codes.Error) != failed {
			t.Errorf("%s: status %v", name, s.Status)
		}
	}
}
