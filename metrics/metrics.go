// Package metrics holds Parley's Prometheus metrics: one registry per
// process with the Go runtime and process collectors, the parley_…
// histograms and counters that the server, the database and the broker
// observe as they work, and gauges read at scrape time from the counts the
// other packages keep (connections, subscriptions, the hub, the delivery
// queue). It is the only package that imports the Prometheus client.
//
// Every method of a nil *Metrics does nothing, so that code built without
// metrics (tests, tools) needs no checks. A *Metrics is safe for concurrent
// use.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Labels that stand for a GraphQL operation name that is not one.
const (
	// Anonymous is the operation label of an operation without a name.
	Anonymous = "(anonymous)"
	// Invalid is the operation label of a document that did not parse or
	// validate: its names are the client's words, never recorded.
	Invalid = "(invalid)"
	// Other is the operation label of every name after the first
	// MaxOperationNames.
	Other = "(other)"
)

// MaxOperationNames bounds the operation names a process records as
// labels: operations named after the first MaxOperationNames distinct names
// count as Other, so that clients cannot grow the series without bound.
const MaxOperationNames = 200

// Metrics is one process's registry and the metrics Parley observes.
// Use New.
type Metrics struct {
	reg *prometheus.Registry

	httpDuration *prometheus.HistogramVec
	opDuration   *prometheus.HistogramVec
	batchFrames  *prometheus.HistogramVec
	batchBytes   *prometheus.HistogramVec
	dbDuration   *prometheus.HistogramVec
	published    *prometheus.CounterVec

	namesMu sync.Mutex
	names   map[string]struct{}
}

// latencyBuckets are the buckets, in seconds, of request and operation
// latencies: 1 ms to 10 s.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// dbBuckets are the buckets, in seconds, of statement latencies: 100 µs to
// 2.5 s.
var dbBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// New returns a registry holding the Go runtime and process collectors
// and Parley's own metrics.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), names: map[string]struct{}{}}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parley_http_request_duration_seconds",
		Help:    "HTTP requests by route, method and status code, and how long they took (WebSocket and event-stream connections excluded).",
		Buckets: latencyBuckets,
	}, []string{"handler", "method", "code"})
	m.opDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parley_graphql_operation_duration_seconds",
		Help:    "GraphQL operations by operation name, type and result code (OK, or the first error's extensions.code), and how long they took; for a subscription, until it was live.",
		Buckets: latencyBuckets,
	}, []string{"operation", "type", "code"})
	m.batchFrames = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parley_realtime_write_batch_messages",
		Help:    "Messages written to a realtime connection in one write, by transport.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	}, []string{"transport"})
	m.batchBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parley_realtime_write_batch_bytes",
		Help:    "Bytes written to a realtime connection in one write, by transport.",
		Buckets: prometheus.ExponentialBuckets(64, 4, 9),
	}, []string{"transport"})
	m.dbDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parley_db_query_duration_seconds",
		Help:    "Database statements by kind (select, insert, update, delete, other) and outcome, and how long they took.",
		Buckets: dbBuckets,
	}, []string{"statement", "result"})
	m.published = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_events_published_total",
		Help: "Events this node published to the broker, by result (ok, error).",
	}, []string{"result"})
	m.reg.MustRegister(m.httpDuration, m.opDuration, m.batchFrames, m.batchBytes, m.dbDuration, m.published)
	// Series that exist from the start, so that rates see their first
	// increase.
	m.published.WithLabelValues("ok")
	m.published.WithLabelValues("error")
	return m
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for tests and for collectors of the
// caller's own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveHTTP records one HTTP request to handler (a route pattern, a
// fixed set) that answered code after d.
func (m *Metrics) ObserveHTTP(handler, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpDuration.WithLabelValues(handler, method, strconv.Itoa(code)).Observe(d.Seconds())
}

// ObserveOperation records one GraphQL operation: name is its operation
// name ("" for an anonymous one), valid false for a document that did not
// parse or validate, typ query, mutation, subscription or unknown, code
// OK or an error code.
func (m *Metrics) ObserveOperation(name string, valid bool, typ, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.opDuration.WithLabelValues(m.operationLabel(name, valid), typ, code).Observe(d.Seconds())
}

// operationLabel bounds the operation names recorded.
func (m *Metrics) operationLabel(name string, valid bool) string {
	switch {
	case !valid:
		return Invalid
	case name == "":
		return Anonymous
	}
	m.namesMu.Lock()
	defer m.namesMu.Unlock()
	if _, ok := m.names[name]; ok {
		return name
	}
	if len(m.names) >= MaxOperationNames {
		return Other
	}
	m.names[name] = struct{}{}
	return name
}

// ObserveWriteBatch records one write of messages (frames or events)
// totalling bytes to a connection of transport (websocket, sse).
func (m *Metrics) ObserveWriteBatch(transport string, messages, bytes int) {
	if m == nil {
		return
	}
	m.batchFrames.WithLabelValues(transport).Observe(float64(messages))
	m.batchBytes.WithLabelValues(transport).Observe(float64(bytes))
}

// ObserveQuery records one database statement of kind statement that
// took d and failed when failed is true.
func (m *Metrics) ObserveQuery(statement string, failed bool, d time.Duration) {
	if m == nil {
		return
	}
	result := "ok"
	if failed {
		result = "error"
	}
	m.dbDuration.WithLabelValues(statement, result).Observe(d.Seconds())
}

// observePublish records one publish.
func (m *Metrics) observePublish(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.published.WithLabelValues(result).Inc()
}

// Sources are the counts the metrics read at scrape time; nil fields are
// left out. Each function must be safe for concurrent use.
type Sources struct {
	// Connections returns the open WebSocket connections and event
	// streams, and the connections closed as slow since start.
	Connections func() (websockets, eventStreams int, closedSlow int64)
	// Subscriptions returns the live subscriptions of the node's hub.
	Subscriptions func() int
	// Hub returns the events the hub received from the broker, the
	// executions of subscription documents and the payloads it handed to
	// connections, since start.
	Hub func() (received, executions, delivered int64)
	// BrokerReconnects returns how often the broker's connection was
	// restored after it was lost.
	BrokerReconnects func() int64
	// Queue returns the delivery queue's depth and this node's counts;
	// ctx bounds the query it makes.
	Queue func(ctx context.Context) (QueueStats, error)
}

// QueueStats are the delivery queue's numbers: depth by state across
// nodes, and this node's totals since start.
type QueueStats struct {
	Available, Scheduled, Running   int64
	Attempts, Sent, Failed, GivenUp int64
}

// Watch registers gauges and counters that read s at every scrape. Call it
// once.
func (m *Metrics) Watch(s Sources) {
	if m == nil {
		return
	}
	if s.Connections != nil {
		m.reg.MustRegister(connectionsCollector(s.Connections))
	}
	if s.Subscriptions != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_subscriptions",
			Help: "Live GraphQL subscriptions on this node.",
		}, func() float64 { return float64(s.Subscriptions()) }))
	}
	if s.Hub != nil {
		m.reg.MustRegister(hubCollector(s.Hub))
	}
	if s.BrokerReconnects != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_broker_reconnects_total",
			Help: "Times the broker connection (Redis) was restored after it was lost.",
		}, func() float64 { return float64(s.BrokerReconnects()) }))
	}
	if s.Queue != nil {
		m.reg.MustRegister(&queueCollector{stats: s.Queue})
	}
}
