package hub_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/memory"
)

// countingBroker counts the topics its subscriptions add and remove.
type countingBroker struct {
	pubsub.Broker
	mu           sync.Mutex
	adds, remove map[string]int
}

func (b *countingBroker) Subscribe(ctx context.Context, topics ...string) (pubsub.Subscription, error) {
	sub, err := b.Broker.Subscribe(ctx, topics...)
	if err != nil {
		return nil, err
	}
	return &countingSub{Subscription: sub, b: b}, nil
}

type countingSub struct {
	pubsub.Subscription
	b *countingBroker
}

func (s *countingSub) Add(ctx context.Context, topics ...string) error {
	s.b.mu.Lock()
	for _, t := range topics {
		s.b.adds[t]++
	}
	s.b.mu.Unlock()
	return s.Subscription.Add(ctx, topics...)
}

func (s *countingSub) Remove(ctx context.Context, topics ...string) error {
	s.b.mu.Lock()
	for _, t := range topics {
		s.b.remove[t]++
	}
	s.b.mu.Unlock()
	return s.Subscription.Remove(ctx, topics...)
}

func (b *countingBroker) counts(topic string) (int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adds[topic], b.remove[topic]
}

// op is an Operation that records what it is sent.
type op struct {
	key      string
	value    *atomic.Value // the value Emit handed over
	executed *atomic.Int64
	mu       sync.Mutex
	got      []string
	ended    chan error
}

func newOp(key string, executed *atomic.Int64) *op {
	return &op{key: key, value: new(atomic.Value), executed: executed, ended: make(chan error, 1)}
}

func (o *op) Key() string { return o.key }

func (o *op) Execute() ([]byte, error) {
	o.executed.Add(1)
	return []byte(o.value.Load().(string)), nil
}

func (o *op) Send(payload []byte, _ bool) {
	o.mu.Lock()
	o.got = append(o.got, string(payload))
	o.mu.Unlock()
}

func (o *op) End(err error) { o.ended <- err }

func (o *op) received() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

// subscribe registers o on topics, delivering every event as a string.
func subscribe(t *testing.T, h *hub.Hub, o *op, topics ...string) hub.Ticket {
	t.Helper()
	ticket := h.Expect(o)
	_, err := h.Subscribe(hub.WithTicket(t.Context(), ticket), hub.Spec{
		Topics: topics,
		Emit:   func(v any) { o.value.Store(v) },
		Pick: func(_ string, ev any) hub.Verdict {
			return hub.Verdict{Value: ev, Deliver: true}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ticket); err != nil {
		t.Fatal(err)
	}
	return ticket
}

func newHub(t *testing.T, broker pubsub.Broker, decodes *atomic.Int64) *hub.Hub {
	t.Helper()
	h, err := hub.New(broker, hub.Options{Decode: func(_ string, data []byte) (any, error) {
		decodes.Add(1)
		return string(data), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// waitFor polls cond until it holds, for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOneBrokerTopicPerNode: however many subscriptions follow a topic,
// the node's broker subscription adds it once and removes it when the
// last one leaves; each payload is decoded once and executed once per
// operation key; no subscription has a goroutine.
func TestOneBrokerTopicPerNode(t *testing.T) {
	mem := memory.New(pubsub.Options{Logger: slog.New(slog.DiscardHandler), Buffer: 1 << 12})
	t.Cleanup(func() { _ = mem.Close() })
	broker := &countingBroker{Broker: mem, adds: map[string]int{}, remove: map[string]int{}}
	var decodes, executed atomic.Int64
	h := newHub(t, broker, &decodes)

	const n = 1000
	before := runtime.NumGoroutine()
	ops := make([]*op, n)
	tickets := make([]hub.Ticket, n)
	for i := range ops {
		ops[i] = newOp("key-"+strconv.Itoa(i%2), &executed) // two groups
		tickets[i] = subscribe(t, h, ops[i], "room")
	}
	if grew := runtime.NumGoroutine() - before; grew > 2 {
		t.Fatalf("%d subscriptions started %d goroutines", n, grew)
	}
	if adds, _ := broker.counts("room"); adds != 1 {
		t.Fatalf("the broker subscription added the topic %d times, want 1", adds)
	}
	if got := h.Subscriptions(); got != n {
		t.Fatalf("Subscriptions() = %d, want %d", got, n)
	}

	for i := range 3 {
		if err := mem.Publish(t.Context(), "room", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range ops {
		waitFor(t, "every subscription got 3 messages", func() bool { return len(o.received()) == 3 })
	}
	for i, o := range ops {
		if got := o.received(); len(got) != 3 || got[0] != "m0" || got[2] != "m2" {
			t.Fatalf("subscription %d got %q", i, got)
		}
	}
	if decodes.Load() != 3 {
		t.Fatalf("3 payloads decoded %d times, want 3", decodes.Load())
	}
	if executed.Load() != 6 {
		t.Fatalf("3 events for 2 operation keys executed %d times, want 6", executed.Load())
	}

	for _, ticket := range tickets[:n-1] {
		h.Stop(ticket)
	}
	if _, removes := broker.counts("room"); removes != 0 {
		t.Fatalf("removed the topic while a subscription follows it")
	}
	h.Stop(tickets[n-1])
	if _, removes := broker.counts("room"); removes != 1 {
		t.Fatalf("the topic was removed %d times after the last subscription left, want 1", removes)
	}
}

// TestSequencedStream: a stream's events are delivered in index order,
// duplicates dropped, and a gap filled once with Fill.
func TestSequencedStream(t *testing.T) {
	mem := memory.New(pubsub.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = mem.Close() })
	h, err := hub.New(mem, hub.Options{
		Decode: func(_ string, data []byte) (any, error) { return string(data), nil },
		Sequence: func(ev any) (string, int, bool) {
			i, err := strconv.Atoi(ev.(string))
			return "s", i, err == nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	var fills atomic.Int64
	var executed atomic.Int64
	ops := []*op{newOp("a", &executed), newOp("b", &executed)}
	for _, o := range ops {
		ticket := h.Expect(o)
		_, err := h.Subscribe(hub.WithTicket(t.Context(), ticket), hub.Spec{
			Topics: []string{"t"},
			Emit:   func(v any) { o.value.Store(v) },
			Pick:   func(_ string, ev any) hub.Verdict { return hub.Verdict{Value: ev, Deliver: true} },
			Fill: func(_ context.Context, stream string, after, before int) ([]any, error) {
				fills.Add(1)
				var out []any
				for i := after + 1; i < before; i++ {
					out = append(out, strconv.Itoa(i))
				}
				return out, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ticket); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []string{"0", "1", "1", "4", "2", "5"} {
		if err := mem.Publish(t.Context(), "t", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"0", "1", "2", "3", "4", "5"}
	for _, o := range ops {
		waitFor(t, "six messages", func() bool { return len(o.received()) >= len(want) })
		if got := o.received(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if fills.Load() != 1 {
		t.Fatalf("one gap filled with %d queries, want 1", fills.Load())
	}
}

// TestSubscribeNeedsTicket: a context without a ticket is refused.
func TestSubscribeNeedsTicket(t *testing.T) {
	mem := memory.New(pubsub.Options{})
	t.Cleanup(func() { _ = mem.Close() })
	var decodes atomic.Int64
	h := newHub(t, mem, &decodes)
	if _, err := h.Subscribe(t.Context(), hub.Spec{Topics: []string{"x"}}); err == nil {
		t.Fatal("Subscribe without a ticket succeeded")
	}
	if err := h.Start(h.Expect(newOp("k", new(atomic.Int64)))); err == nil {
		t.Fatal("Start of a ticket without a subscription succeeded")
	}
}
