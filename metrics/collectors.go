package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// funcCollector is a collector of constant metrics computed by collect at
// each scrape.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// connectionsCollector reports the open realtime connections by transport
// and those closed as slow.
func connectionsCollector(f func() (int, int, int64)) prometheus.Collector {
	open := prometheus.NewDesc("parley_realtime_connections",
		"Open realtime connections on this node, by transport (websocket, sse).", []string{"transport"}, nil)
	slow := prometheus.NewDesc("parley_realtime_connections_closed_slow_total",
		"Realtime connections closed because they fell behind (queue overflow or a stalled write).", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{open, slow}, collect: func(ch chan<- prometheus.Metric) {
		ws, sse, closed := f()
		ch <- prometheus.MustNewConstMetric(open, prometheus.GaugeValue, float64(ws), "websocket")
		ch <- prometheus.MustNewConstMetric(open, prometheus.GaugeValue, float64(sse), "sse")
		ch <- prometheus.MustNewConstMetric(slow, prometheus.CounterValue, float64(closed))
	}}
}

// hubCollector reports the hub's counts.
func hubCollector(f func() (int64, int64, int64)) prometheus.Collector {
	received := prometheus.NewDesc("parley_events_received_total",
		"Events this node's hub received from the broker for the topics it follows.", nil, nil)
	executions := prometheus.NewDesc("parley_subscription_executions_total",
		"Executions of subscription documents: one per event and group of subscriptions with the same document, variables and viewer class.", nil, nil)
	delivered := prometheus.NewDesc("parley_events_delivered_total",
		"Subscription results handed to realtime connections (live events, history replay excluded).", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{received, executions, delivered}, collect: func(ch chan<- prometheus.Metric) {
		r, e, d := f()
		ch <- prometheus.MustNewConstMetric(received, prometheus.CounterValue, float64(r))
		ch <- prometheus.MustNewConstMetric(executions, prometheus.CounterValue, float64(e))
		ch <- prometheus.MustNewConstMetric(delivered, prometheus.CounterValue, float64(d))
	}}
}

// queueScrapeTimeout bounds the delivery queue's depth query at a scrape.
const queueScrapeTimeout = 2 * time.Second

// queueCollector reports the delivery queue's depth and counts. A failed
// depth query leaves the depth out of that scrape and counts the failure.
type queueCollector struct {
	stats func(ctx context.Context) (QueueStats, error)
}

var (
	queueDepthDesc = prometheus.NewDesc("parley_delivery_jobs",
		"Delivery jobs (push and webhooks) in the queue, on every node, by state (available, scheduled, running).", []string{"state"}, nil)
	queueAttemptsDesc = prometheus.NewDesc("parley_delivery_attempts_total",
		"Deliveries this node tried (one per device or webhook), by result (sent, failed).", []string{"result"}, nil)
	queueGivenUpDesc = prometheus.NewDesc("parley_delivery_given_up_total",
		"Deliveries this node gave up after their last attempt or a final error.", nil, nil)
	queueScrapeErrDesc = prometheus.NewDesc("parley_delivery_jobs_scrape_error",
		"1 when the last scrape could not count the delivery jobs, else 0.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueDepthDesc, queueAttemptsDesc, queueGivenUpDesc, queueScrapeErrDesc} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueScrapeTimeout)
	defer cancel()
	s, err := c.stats(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
	} else {
		for state, n := range map[string]int64{"available": s.Available, "scheduled": s.Scheduled, "running": s.Running} {
			ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), state)
		}
	}
	ch <- prometheus.MustNewConstMetric(queueScrapeErrDesc, prometheus.GaugeValue, failed)
	ch <- prometheus.MustNewConstMetric(queueAttemptsDesc, prometheus.CounterValue, float64(s.Sent), "sent")
	ch <- prometheus.MustNewConstMetric(queueAttemptsDesc, prometheus.CounterValue, float64(s.Failed), "failed")
	ch <- prometheus.MustNewConstMetric(queueGivenUpDesc, prometheus.CounterValue, float64(s.GivenUp))
}
