package server_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/tracing"
)

// collectedSpan is a span an OTLP collector received, with the node
// (service.instance.id) that sent it.
type collectedSpan struct {
	node string
	span *tracepb.Span
}

// fakeCollector is an OTLP/HTTP trace receiver: it decodes each
// ExportTraceServiceRequest (protobuf) posted to /v1/traces.
type fakeCollector struct {
	*httptest.Server
	mu    sync.Mutex
	spans []collectedSpan
}

func newFakeCollector(t *testing.T) *fakeCollector {
	c := &fakeCollector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("collector got %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("collector: decode ExportTraceServiceRequest: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			node := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.instance.id" {
					node = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					c.spans = append(c.spans, collectedSpan{node, s})
				}
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

// find returns the spans of node named name.
func (c *fakeCollector) find(node, name string) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if s.node == node && s.span.GetName() == name {
			out = append(out, s.span)
		}
	}
	return out
}

// tracedNode returns a tracer provider exporting to c as node, configured
// as the parley command configures it from OTEL_EXPORTER_OTLP_ENDPOINT.
func tracedNode(t *testing.T, c *fakeCollector, node string) *tracing.Provider {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c.URL}
	p, err := tracing.New(context.Background(), func(k string) string { return env[k] }, tracing.Config{Instance: node})
	if err != nil || !p.Enabled() {
		t.Fatalf("tracing.New: %v (enabled %v)", err, p.Enabled())
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// TestTraces: a sendMessage on node A is one trace, exported over OTLP to
// a collector: the operation's span continues the caller's traceparent,
// its database statements are child spans, and node B, which delivers
// the message to a subscriber, records its delivery as a child of the
// operation, its trace context carried in the event through the broker.
func TestTraces(t *testing.T) {
	t.Parallel()
	collector := newFakeCollector(t)
	pa, pb := tracedNode(t, collector, "node-a"), tracedNode(t, collector, "node-b")
	sqlite := parleytest.Backends()[0]
	a := parleytest.NewServer(t, sqlite, parleytest.Options{Tracer: pa.TracerProvider()})
	b := parleytest.NewServer(t, sqlite, parleytest.Options{DatabaseURL: a.DatabaseURL, Broker: a.Broker, Presence: a.Presence, Tracer: pb.TracerProvider()})

	alice := a.Client("alice")
	ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
	bobOnB := b.Dial(t, "bob")
	sub := bobOnB.Subscribe(messageAddedSub, map[string]any{"c": ch, "after": -1})
	mustSend(t, alice, ch, "ready")
	nextAdded(t, sub) // live

	// The caller's trace context: the operation continues its trace.
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	alice.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	sent := mustSend(t, alice, ch, "traced")
	if ev := nextAdded(t, sub); ev.MessageAdded.Index != sent.Index {
		t.Fatalf("node B delivered %+v, want index %d", ev, sent.Index)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range []*tracing.Provider{pa, pb} {
		if err := p.ForceFlush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	var op *tracepb.Span
	for _, s := range collector.find("node-a", "mutation") {
		if hex.EncodeToString(s.GetTraceId()) == callerTrace {
			op = s
		}
	}
	if op == nil {
		t.Fatalf("no mutation span of trace %s on node A; spans: %v", callerTrace, collector.spans)
	}
	if got := hex.EncodeToString(op.GetParentSpanId()); got != callerSpan {
		t.Errorf("the operation's parent is %s, want the caller's %s", got, callerSpan)
	}
	if op.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("operation span kind %v", op.GetKind())
	}
	children := 0
	for _, s := range collector.find("node-a", "db insert") {
		if string(s.GetParentSpanId()) == string(op.GetSpanId()) {
			children++
		}
	}
	if children == 0 {
		t.Error("no database span under the operation's span")
	}
	var delivered bool
	for _, s := range collector.find("node-b", "parley.deliver") {
		if string(s.GetTraceId()) == string(op.GetTraceId()) && string(s.GetParentSpanId()) == string(op.GetSpanId()) {
			delivered = true
		}
	}
	if !delivered {
		t.Errorf("no delivery span on node B under the operation's span %x", op.GetSpanId())
	}
}
