package metrics

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/presence"
	"github.com/parleychat/parley/pubsub"
)

// Broker returns b counting its publishes in parley_events_published_total.
// A nil m returns b itself.
func (m *Metrics) Broker(b pubsub.Broker) pubsub.Broker {
	if m == nil {
		return b
	}
	return &broker{Broker: b, m: m}
}

// broker is a pubsub.Broker that counts publishes.
type broker struct {
	pubsub.Broker
	m *Metrics
}

var _ pubsub.Broker = (*broker)(nil)

// Publish implements pubsub.Broker.
func (b *broker) Publish(ctx context.Context, topic string, data []byte) error {
	err := b.Broker.Publish(ctx, topic, data)
	b.m.observePublish(err)
	return err
}

// Presence returns t counting, on this node, the users with a live
// connection (parley_presence_users) and their connections
// (parley_presence_connections), and the users coming online and going
// offline across the deployment (parley_presence_changes_total). A nil m
// returns t itself.
func (m *Metrics) Presence(t presence.Tracker) presence.Tracker {
	if m == nil {
		return t
	}
	p := &tracker{Tracker: t, users: map[string]int{}}
	p.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_presence_changes_total",
		Help: "Users whose first connection anywhere opened (online) or last one closed (offline), as seen by this node.",
	}, []string{"to"})
	p.changes.WithLabelValues("online")
	p.changes.WithLabelValues("offline")
	m.reg.MustRegister(p.changes, &funcCollector{descs: []*prometheus.Desc{presenceUsersDesc, presenceConnsDesc}, collect: p.collect})
	return p
}

var (
	presenceUsersDesc = prometheus.NewDesc("parley_presence_users",
		"Users with at least one live connection on this node.", nil, nil)
	presenceConnsDesc = prometheus.NewDesc("parley_presence_connections",
		"Live connections recorded in presence on this node.", nil, nil)
)

// tracker is a presence.Tracker that counts.
type tracker struct {
	presence.Tracker
	changes *prometheus.CounterVec

	mu    sync.Mutex
	users map[string]int
	conns int
}

var _ presence.Tracker = (*tracker)(nil)

// Connect implements presence.Tracker.
func (p *tracker) Connect(ctx context.Context, userID string) (bool, error) {
	first, err := p.Tracker.Connect(ctx, userID)
	if err != nil {
		return first, err
	}
	p.mu.Lock()
	p.users[userID]++
	p.conns++
	p.mu.Unlock()
	if first {
		p.changes.WithLabelValues("online").Inc()
	}
	return first, nil
}

// Disconnect implements presence.Tracker.
func (p *tracker) Disconnect(ctx context.Context, userID string) (bool, error) {
	last, err := p.Tracker.Disconnect(ctx, userID)
	p.mu.Lock()
	if n, ok := p.users[userID]; ok {
		if n <= 1 {
			delete(p.users, userID)
		} else {
			p.users[userID] = n - 1
		}
		p.conns--
	}
	p.mu.Unlock()
	if err == nil && last {
		p.changes.WithLabelValues("offline").Inc()
	}
	return last, err
}

func (p *tracker) collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	users, conns := len(p.users), p.conns
	p.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(presenceUsersDesc, prometheus.GaugeValue, float64(users))
	ch <- prometheus.MustNewConstMetric(presenceConnsDesc, prometheus.GaugeValue, float64(conns))
}
