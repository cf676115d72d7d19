// Package pubsubtest is the conformance suite that every pubsub.Broker
// implementation runs from its own tests:
//
//	func TestBroker(t *testing.T) {
//		pubsubtest.Run(t, func(t *testing.T) pubsub.Broker {
//			b := memory.New(pubsub.Options{Buffer: 16})
//			t.Cleanup(func() { _ = b.Close() })
//			return b
//		})
//	}
//
// Topics get a random suffix, so the suite can share a server
// with other tests. Its functions are meant to be called from a test's
// goroutine, like the testing.T they take.
package pubsubtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/pubsub"
)

const (
	// MinBuffer and MaxBuffer bound the Options.Buffer of the brokers
	// given to Run: the tests publish fewer than MinBuffer messages
	// without reading them, and the slow-consumer test publishes
	// MaxBuffer+2 messages.
	MinBuffer = 16
	MaxBuffer = 1000

	// wait bounds every wait for something that should happen.
	wait = 5 * time.Second
	// quiet is how long a test waits to see that nothing arrives.
	quiet = 100 * time.Millisecond
)

// Run runs the Broker conformance tests. newBroker must return a new
// Broker, created with an Options.Buffer between MinBuffer and MaxBuffer,
// and should close it in t.Cleanup (the suite closes some itself first, so
// Close must allow a second call).
func Run(t *testing.T, newBroker func(t *testing.T) pubsub.Broker) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, b pubsub.Broker)
	}{
		{"PublishSubscribe", testPublishSubscribe},
		{"TopicsIsolated", testTopicsIsolated},
		{"ManySubscribers", testManySubscribers},
		{"AddRemove", testAddRemove},
		{"OrderPerTopic", testOrderPerTopic},
		{"ContextCancel", testContextCancel},
		{"SubscriptionClose", testSubscriptionClose},
		{"SlowConsumer", testSlowConsumer},
		{"BrokerClose", testBrokerClose},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newBroker(t))
		})
	}
}

// Unique returns name with a random suffix, for topics that no other test
// uses.
func Unique(name string) string {
	return name + "-" + strings.ToLower(rand.Text()[:10])
}

// Receive returns the next message of sub, failing t if none arrives within
// a few seconds or if the subscription ends.
func Receive(t *testing.T, sub pubsub.Subscription) pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	m, ok := sub.Next(ctx)
	if !ok {
		if ctx.Err() != nil {
			t.Fatalf("no message within %v", wait)
		}
		t.Fatalf("subscription ended early: Err() = %v", sub.Err())
	}
	return m
}

// ExpectMessage receives the next message of sub and checks it.
func ExpectMessage(t *testing.T, sub pubsub.Subscription, topic, data string) {
	t.Helper()
	m := Receive(t, sub)
	if m.Topic != topic || string(m.Data) != data {
		t.Fatalf("got message %q on %q, want %q on %q", m.Data, m.Topic, data, topic)
	}
}

// ExpectNone checks that sub receives nothing for a short while.
func ExpectNone(t *testing.T, sub pubsub.Subscription) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), quiet)
	defer cancel()
	m, ok := sub.Next(ctx)
	switch {
	case ok:
		t.Fatalf("unexpected message %q on %q", m.Data, m.Topic)
	case ctx.Err() == nil:
		t.Fatalf("subscription ended: Err() = %v", sub.Err())
	}
}

// Drain reads sub until it ends and returns what it read, failing t if it
// does not end within a few seconds.
func Drain(t *testing.T, sub pubsub.Subscription) []pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	var got []pubsub.Message
	for {
		m, ok := sub.Next(ctx)
		if !ok {
			if ctx.Err() != nil {
				t.Fatalf("subscription did not end within %v (read %d messages)", wait, len(got))
			}
			return got
		}
		got = append(got, m)
	}
}

// publish publishes data on topic, failing t on error.
func publish(t *testing.T, b pubsub.Broker, topic, data string) {
	t.Helper()
	if err := b.Publish(t.Context(), topic, []byte(data)); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

// subscribe subscribes to topics, failing t on error, and closes the
// subscription in t.Cleanup.
func subscribe(t *testing.T, b pubsub.Broker, topics ...string) pubsub.Subscription {
	t.Helper()
	sub, err := b.Subscribe(t.Context(), topics...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topics, err)
	}
	t.Cleanup(sub.Close)
	return sub
}

func testPublishSubscribe(t *testing.T, b pubsub.Broker) {
	topic := Unique("pubsub")
	publish(t, b, topic, "before anyone listens")
	sub := subscribe(t, b, topic)
	data := []byte("hello")
	if err := b.Publish(t.Context(), topic, data); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	copy(data, "HELLO") // Publish must not keep the caller's slice.
	ExpectMessage(t, sub, topic, "hello")
	ExpectNone(t, sub)
}

func testTopicsIsolated(t *testing.T, b pubsub.Broker) {
	ta, tb := Unique("a"), Unique("b")
	subA := subscribe(t, b, ta)
	subB := subscribe(t, b, tb)
	publish(t, b, ta, "for a")
	publish(t, b, tb, "for b")
	ExpectMessage(t, subA, ta, "for a")
	ExpectMessage(t, subB, tb, "for b")
	ExpectNone(t, subA)
	ExpectNone(t, subB)
}

func testManySubscribers(t *testing.T, b pubsub.Broker) {
	topic := Unique("many")
	subs := []pubsub.Subscription{
		subscribe(t, b, topic),
		subscribe(t, b, topic),
		subscribe(t, b, Unique("other"), topic),
	}
	const n = MinBuffer - 1
	for i := range n {
		publish(t, b, topic, strconv.Itoa(i))
	}
	for _, sub := range subs {
		for i := range n {
			ExpectMessage(t, sub, topic, strconv.Itoa(i))
		}
		ExpectNone(t, sub)
	}
}

func testAddRemove(t *testing.T, b pubsub.Broker) {
	ta, tb := Unique("a"), Unique("b")
	sub := subscribe(t, b)
	other := subscribe(t, b, ta)

	// A publish right after Add returns is delivered.
	if err := sub.Add(t.Context(), ta); err != nil {
		t.Fatalf("Add(a): %v", err)
	}
	publish(t, b, ta, "a1")
	ExpectMessage(t, sub, ta, "a1")
	ExpectMessage(t, other, ta, "a1")
	if err := sub.Add(t.Context(), tb, tb); err != nil {
		t.Fatalf("Add(b): %v", err)
	}
	publish(t, b, tb, "b1")
	ExpectMessage(t, sub, tb, "b1")

	// Adding a topic twice does not deliver its messages twice.
	if err := sub.Add(t.Context(), ta); err != nil {
		t.Fatalf("Add(a) again: %v", err)
	}
	publish(t, b, ta, "a2")
	ExpectMessage(t, sub, ta, "a2")
	ExpectMessage(t, other, ta, "a2")
	ExpectNone(t, sub)

	// After Remove, nothing of the topic arrives; other subscribers of
	// the topic are not affected.
	if err := sub.Remove(t.Context(), ta, Unique("never-added")); err != nil {
		t.Fatalf("Remove(a): %v", err)
	}
	publish(t, b, ta, "a3")
	publish(t, b, tb, "b2")
	ExpectMessage(t, sub, tb, "b2")
	ExpectNone(t, sub)
	ExpectMessage(t, other, ta, "a3")

	// A removed topic can be added again.
	if err := sub.Add(t.Context(), ta); err != nil {
		t.Fatalf("Add(a) after Remove: %v", err)
	}
	publish(t, b, ta, "a4")
	ExpectMessage(t, sub, ta, "a4")
	ExpectMessage(t, other, ta, "a4")

	// Removing every topic leaves a live subscription.
	if err := sub.Remove(t.Context(), ta, tb); err != nil {
		t.Fatalf("Remove(a, b): %v", err)
	}
	publish(t, b, ta, "a5")
	publish(t, b, tb, "b3")
	ExpectMessage(t, other, ta, "a5")
	ExpectNone(t, sub)
	if err := sub.Add(t.Context(), tb); err != nil {
		t.Fatalf("Add(b) after removing all: %v", err)
	}
	publish(t, b, tb, "b4")
	ExpectMessage(t, sub, tb, "b4")
}

func testOrderPerTopic(t *testing.T, b pubsub.Broker) {
	ta, tb := Unique("a"), Unique("b")
	sub := subscribe(t, b, ta, tb)
	const total, batch = 200, MinBuffer / 2
	next := map[string]int{ta: 0, tb: 0}
	for start := 0; start < total; start += batch {
		for i := start; i < start+batch; i++ {
			topic := ta
			if i%3 == 0 {
				topic = tb
			}
			publish(t, b, topic, strconv.Itoa(i))
		}
		for range batch {
			m := Receive(t, sub)
			n, err := strconv.Atoi(string(m.Data))
			if err != nil {
				t.Fatalf("unexpected payload %q", m.Data)
			}
			if n < next[m.Topic] {
				t.Fatalf("topic %q: got %d after %d", m.Topic, n, next[m.Topic]-1)
			}
			next[m.Topic] = n + 1
		}
	}
	ExpectNone(t, sub)
}

func testContextCancel(t *testing.T, b pubsub.Broker) {
	topic := Unique("cancel")
	ctx, cancel := context.WithCancel(t.Context())
	sub, err := b.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	publish(t, b, topic, "before")
	ExpectMessage(t, sub, topic, "before")
	cancel()
	Drain(t, sub)
	if err := sub.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
	publish(t, b, topic, "after")
	if err := sub.Add(t.Context(), Unique("late")); err != nil {
		t.Fatalf("Add on an ended subscription: %v", err)
	}
	if err := sub.Remove(t.Context(), topic); err != nil {
		t.Fatalf("Remove on an ended subscription: %v", err)
	}
	sub.Close()

	// A done context is refused at once.
	if sub, err := b.Subscribe(ctx, topic); err == nil {
		sub.Close()
		t.Fatal("Subscribe with a done context succeeded")
	}
}

func testSubscriptionClose(t *testing.T, b pubsub.Broker) {
	topic := Unique("close")
	sub := subscribe(t, b, topic)
	keep := subscribe(t, b, topic)
	sub.Close()
	Drain(t, sub)
	if err := sub.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
	sub.Close()
	publish(t, b, topic, "still")
	ExpectMessage(t, keep, topic, "still")
}

func testSlowConsumer(t *testing.T, b pubsub.Broker) {
	topic := Unique("slow")
	slow := subscribe(t, b, topic)
	fast := subscribe(t, b, topic)
	const total = MaxBuffer + 2
	for i := range total {
		data := strconv.Itoa(i)
		published := make(chan error, 1)
		go func() { published <- b.Publish(t.Context(), topic, []byte(data)) }()
		timer := time.NewTimer(wait)
		select {
		case err := <-published:
			if err != nil {
				t.Fatalf("Publish %d: %v", i, err)
			}
		case <-timer.C:
			t.Fatalf("Publish %d blocked for %v behind a slow subscriber", i, wait)
		}
		timer.Stop()
		// Stay in step with the fast subscriber, so that only the slow
		// one falls behind.
		ExpectMessage(t, fast, topic, data)
	}
	got := Drain(t, slow)
	if err := slow.Err(); !errors.Is(err, pubsub.ErrSlowConsumer) {
		t.Fatalf("slow Err() = %v, want ErrSlowConsumer", err)
	}
	if len(got) < MinBuffer || len(got) >= total {
		t.Fatalf("slow subscriber read %d messages before the end, want at least %d and fewer than %d", len(got), MinBuffer, total)
	}
	for i, m := range got {
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("slow subscriber's message %d is %q: messages were skipped", i, m.Data)
		}
	}
	publish(t, b, topic, "after")
	ExpectMessage(t, fast, topic, "after")
}

func testBrokerClose(t *testing.T, b pubsub.Broker) {
	topic := Unique("closing")
	sub := subscribe(t, b, topic)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	Drain(t, sub)
	if err := sub.Err(); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", err)
	}
	if err := b.Publish(t.Context(), topic, []byte("x")); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe(t.Context(), topic); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// testConcurrent runs publishers, steady subscribers and churning
// subscribers at once; it is mostly for the race detector. The publishers
// keep fewer than MinBuffer/2 messages ahead of the slowest steady
// subscriber, so each steady subscriber must get every message once, with
// each publisher's messages on each topic in order.
func testConcurrent(t *testing.T, b pubsub.Broker) {
	topics := []string{Unique("c0"), Unique("c1"), Unique("c2")}
	const publishers, perPublisher, steady, churners = 4, 60, 3, 4
	const total, window = publishers * perPublisher, MinBuffer / 2

	var (
		wg        sync.WaitGroup
		published atomic.Int64
		received  [steady]atomic.Int64
	)
	// behind returns how many messages the slowest steady subscriber has
	// not read out of the first n.
	behind := func(n int64) int64 {
		slowest := n
		for i := range received {
			slowest = min(slowest, received[i].Load())
		}
		return n - slowest
	}
	errs := make(chan error, publishers+steady+churners)
	for i := range steady {
		sub := subscribe(t, b, topics...)
		wg.Go(func() {
			err := checkSteady(sub, total, &received[i])
			// Let the publishers go on without this subscriber.
			received[i].Store(total)
			errs <- err
		})
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	for c := range churners {
		churn.Go(func() { errs <- churnSubscriptions(t.Context(), b, topics, c, stop) })
	}
	for p := range publishers {
		wg.Go(func() {
			for i := range perPublisher {
				n := published.Add(1)
				deadline := time.Now().Add(wait)
				for behind(n) > window {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("publisher %d: steady subscribers stuck %d messages behind", p, behind(n))
						return
					}
					time.Sleep(50 * time.Microsecond)
				}
				topic := topics[i%len(topics)]
				if err := b.Publish(t.Context(), topic, fmt.Appendf(nil, "%d:%d", p, i)); err != nil {
					errs <- fmt.Errorf("publisher %d: %w", p, err)
					return
				}
			}
			errs <- nil
		})
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// checkSteady reads total messages from sub, counting them in received and
// checking that each publisher's messages arrive in order per topic.
func checkSteady(sub pubsub.Subscription, total int64, received *atomic.Int64) error {
	last := map[string]int{} // by topic and publisher
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	for n := int64(0); n < total; n++ {
		m, ok := sub.Next(ctx)
		if !ok {
			if ctx.Err() != nil {
				return fmt.Errorf("got %d of %d messages", n, total)
			}
			return fmt.Errorf("subscription ended after %d of %d messages: %v", n, total, sub.Err())
		}
		p, seq, ok := strings.Cut(string(m.Data), ":")
		i, err := strconv.Atoi(seq)
		if !ok || err != nil {
			return fmt.Errorf("unexpected payload %q", m.Data)
		}
		key := m.Topic + "/" + p
		if prev, seen := last[key]; seen && i <= prev {
			return fmt.Errorf("topic %q publisher %s: got %d after %d", m.Topic, p, i, prev)
		}
		last[key] = i
		received.Add(1)
	}
	return nil
}

// churnSubscriptions subscribes, changes topics and unsubscribes in a loop
// until stop is closed.
func churnSubscriptions(ctx context.Context, b pubsub.Broker, topics []string, c int, stop <-chan struct{}) error {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		subCtx, cancel := context.WithCancel(ctx)
		sub, err := b.Subscribe(subCtx, topics[(c+i)%len(topics)])
		if err != nil {
			cancel()
			return fmt.Errorf("churner %d: Subscribe: %w", c, err)
		}
		if err := sub.Add(ctx, topics[(c+i+1)%len(topics)]); err != nil {
			cancel()
			return fmt.Errorf("churner %d: Add: %w", c, err)
		}
		if err := sub.Remove(ctx, topics[(c+i)%len(topics)]); err != nil {
			cancel()
			return fmt.Errorf("churner %d: Remove: %w", c, err)
		}
		if i%2 == 0 {
			sub.Close()
		}
		cancel()
	}
}
