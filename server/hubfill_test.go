package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/memory"
)

// lossyBroker loses the payloads that contain a marker, as Redis may
// lose a message while a node reconnects.
type lossyBroker struct {
	pubsub.Broker
	marker []byte
	lost   atomic.Int64
}

// Publish drops payloads that hold the marker.
func (b *lossyBroker) Publish(ctx context.Context, topic string, data []byte) error {
	if bytes.Contains(data, b.marker) {
		b.lost.Add(1)
		return nil
	}
	return b.Broker.Publish(ctx, topic, data)
}

// TestGapFilledOncePerNode: a message lost between nodes is read back from
// the database once per node when the next one arrives, not once per
// subscriber, and every subscriber gets both, in order.
func TestGapFilledOncePerNode(t *testing.T) {
	t.Parallel()
	const conns, perConn = 10, 100 // 1,000 subscriptions on one node
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		mem := memory.New(pubsub.Options{Logger: slog.New(slog.DiscardHandler), Buffer: 1 << 14})
		t.Cleanup(func() { _ = mem.Close() })
		broker := &lossyBroker{Broker: mem, marker: []byte("lost in transit")}
		srv := parleytest.NewServer(t, b, parleytest.Options{Broker: broker})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		// Registered before any query runs: the callbacks are not safe to
		// change while queries run.
		var counting atomic.Bool
		var mu sync.Mutex
		var fills []string
		err := srv.Store.DB(t.Context()).Callback().Query().After("gorm:query").Register("parleytest:fills", func(db *gorm.DB) {
			sql := db.Statement.SQL.String()
			if counting.Load() && strings.Contains(sql, "idx >") && strings.Contains(sql, "idx <") {
				mu.Lock()
				fills = append(fills, sql)
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		var subs []*parleytest.WSSub
		for range conns {
			ws := srv.Dial(t, "bob")
			for range perConn {
				subs = append(subs, ws.Subscribe(messageAddedSub, map[string]any{"c": ch, "after": -1}))
			}
		}
		// Every subscription is live once it has the first message, which
		// it replays if it starts after it was sent.
		mustSend(t, alice, ch, "first")
		for _, sub := range subs {
			if ev := nextAdded(t, sub); ev.MessageAdded.Index != 0 {
				t.Fatalf("first message: index %d", ev.MessageAdded.Index)
			}
		}

		counting.Store(true)
		mustSend(t, alice, ch, "lost in transit")
		mustSend(t, alice, ch, "after the gap")
		for _, sub := range subs {
			for _, want := range []int{1, 2} {
				if ev := nextAdded(t, sub); ev.MessageAdded.Index != want {
					t.Fatalf("after the gap: index %d, want %d", ev.MessageAdded.Index, want)
				}
			}
		}
		if broker.lost.Load() != 1 {
			t.Fatalf("the broker lost %d messages, want 1", broker.lost.Load())
		}
		mu.Lock()
		defer mu.Unlock()
		if len(fills) != 1 {
			t.Fatalf("%d subscribers took %d queries to fill one gap, want 1: %q", len(subs), len(fills), fills)
		}
	})
}
