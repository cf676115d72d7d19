package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/metrics"
	"github.com/parleychat/parley/presence"
	presencememory "github.com/parleychat/parley/presence/memory"
	presenceredis "github.com/parleychat/parley/presence/redis"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/memory"
	"github.com/parleychat/parley/pubsub/redis"
)

// realtime is the broker, the hub on it and the presence tracker the
// server runs with.
type realtime struct {
	broker   pubsub.Broker
	hub      *hub.Hub
	presence presence.Tracker
	// reconnects counts the Redis broker's restored connections; nil
	// without Redis.
	reconnects func() int64
}

// brokerBuffer is the broker's queue for this node's one subscription,
// the hub's: deep enough for a burst while the hub executes events.
const brokerBuffer = 1 << 16

// openRealtime picks the broker: Redis when REDIS_URL is set, so that
// several nodes act as one; otherwise in-process. m counts publishes and
// presence; node names this process in Redis presence; observe is the
// hub's hook around each event's delivery (tracing); redisTrace, when not
// nil, is called around each Redis command sent for a caller (tracing).
func openRealtime(ctx context.Context, url string, log *slog.Logger, m *metrics.Metrics, node string, observe func(string, any) func(),
	redisTrace func(context.Context, string) func(error)) (*realtime, error) {
	opts := pubsub.Options{Logger: log, Buffer: brokerBuffer, Trace: redisTrace}
	var (
		broker     pubsub.Broker
		tracker    presence.Tracker
		reconnects func() int64
	)
	if url == "" {
		broker, tracker = memory.New(opts), presencememory.New()
	} else {
		b, err := redis.NewFromURL(ctx, url, opts)
		if err != nil {
			return nil, fmt.Errorf("redis broker: %w", err)
		}
		broker, reconnects = b, b.Reconnects
		if tracker, err = presenceredis.NewFromURL(ctx, url, node, presenceredis.Options{Trace: redisTrace}); err != nil {
			return nil, errClose(fmt.Errorf("redis presence: %w", err), broker)
		}
	}
	broker, tracker = m.Broker(broker), m.Presence(tracker)
	h, err := hub.New(broker, hub.Options{Decode: chat.DecodeEvent, Sequence: chat.SequenceOf, Logger: log, Observe: observe})
	if err != nil {
		return nil, errors.Join(err, tracker.Close(), broker.Close())
	}
	return &realtime{broker: broker, hub: h, presence: tracker, reconnects: reconnects}, nil
}

// Close closes the hub, the presence tracker (removing this node's
// connections) and the broker.
func (r *realtime) Close() error {
	return errors.Join(r.hub.Close(), r.presence.Close(), r.broker.Close())
}

// nodeID names this process among the nodes sharing Redis.
func nodeID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "node"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
