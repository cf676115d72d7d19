// Package memory implements pubsub.Broker and pubsub.Presence inside one
// process, for single-node deployments and tests. Its types are safe for
// concurrent use by multiple goroutines.
package memory

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	"github.com/parleychat/parley/pubsub"
)

var _ pubsub.Broker = (*Broker)(nil)

// Broker is an in-process pubsub.Broker. Publish hands each message to every
// subscriber of the topic without waiting: a subscriber whose buffer is full
// is ended with pubsub.ErrSlowConsumer, and neither the publisher nor the
// other subscribers are held up. Messages of one topic reach every
// subscriber in the same order. A Broker is safe for concurrent use.
type Broker struct {
	buffer int
	log    *slog.Logger

	// mu guards the fields below; Publish holds it while fanning out, which
	// gives all publishes one order.
	mu     sync.Mutex
	closed bool
	routes map[string]map[*subscription]struct{}
	subs   map[*subscription]struct{}
}

// New returns an empty Broker configured by opts.
func New(opts pubsub.Options) *Broker {
	b := &Broker{
		buffer: opts.Buffer,
		log:    opts.Logger,
		routes: make(map[string]map[*subscription]struct{}),
		subs:   make(map[*subscription]struct{}),
	}
	if b.buffer <= 0 {
		b.buffer = pubsub.DefaultBuffer
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	return b
}

// Publish delivers a copy of data to the current subscribers of topic. It
// returns pubsub.ErrClosed after Close, or ctx's error if ctx is done.
func (b *Broker) Publish(ctx context.Context, topic string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := pubsub.Message{Topic: topic, Data: bytes.Clone(data)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return pubsub.ErrClosed
	}
	for s := range b.routes[topic] {
		if !s.deliver(msg) {
			b.log.Warn("pubsub: ending slow subscriber", "topic", topic, "buffer", b.buffer)
			b.detachLocked(s)
		}
	}
	return nil
}

// Subscribe starts a subscription to topics that ends when ctx is done. It
// returns pubsub.ErrClosed after Close, or ctx's error if ctx is done.
func (b *Broker) Subscribe(ctx context.Context, topics ...string) (pubsub.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &subscription{
		b:      b,
		ch:     make(chan pubsub.Message, b.buffer),
		topics: make(map[string]struct{}),
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, pubsub.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.addLocked(s, topics)
	b.mu.Unlock()
	s.watch(ctx)
	return s, nil
}

// Close ends every subscription with pubsub.ErrClosed. It always returns nil.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	b.subs = nil
	b.routes = nil
	b.mu.Unlock()
	for s := range subs {
		s.end(pubsub.ErrClosed)
	}
	return nil
}

// addLocked adds topics to s, which must be live. b.mu must be held.
func (b *Broker) addLocked(s *subscription, topics []string) {
	for _, t := range topics {
		if _, ok := s.topics[t]; ok {
			continue
		}
		s.topics[t] = struct{}{}
		set := b.routes[t]
		if set == nil {
			set = make(map[*subscription]struct{})
			b.routes[t] = set
		}
		set[s] = struct{}{}
	}
}

// removeLocked removes topics from s. b.mu must be held.
func (b *Broker) removeLocked(s *subscription, topics []string) {
	for _, t := range topics {
		if _, ok := s.topics[t]; !ok {
			continue
		}
		delete(s.topics, t)
		set := b.routes[t]
		delete(set, s)
		if len(set) == 0 {
			delete(b.routes, t)
		}
	}
}

// detachLocked forgets s entirely. b.mu must be held.
func (b *Broker) detachLocked(s *subscription) {
	if b.closed {
		return
	}
	for t := range s.topics {
		set := b.routes[t]
		delete(set, s)
		if len(set) == 0 {
			delete(b.routes, t)
		}
	}
	s.topics = nil
	delete(b.subs, s)
}

// detach forgets s entirely.
func (b *Broker) detach(s *subscription) {
	b.mu.Lock()
	b.detachLocked(s)
	b.mu.Unlock()
}

// subscription is a memory Broker's pubsub.Subscription.
type subscription struct {
	b  *Broker
	ch chan pubsub.Message

	// topics is guarded by b.mu.
	topics map[string]struct{}

	// mu guards the fields below and sending on or closing ch.
	mu    sync.Mutex
	ended bool
	err   error
	stop  func() bool // stops the watch on the Subscribe context
}

// C implements pubsub.Subscription.
func (s *subscription) C() <-chan pubsub.Message { return s.ch }

// Err implements pubsub.Subscription.
func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Add implements pubsub.Subscription. It returns ctx's error if ctx is done.
func (s *subscription) Add(ctx context.Context, topics ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if !s.isEnded() {
		s.b.addLocked(s, topics)
	}
	return nil
}

// Remove implements pubsub.Subscription. It returns ctx's error if ctx is
// done.
func (s *subscription) Remove(ctx context.Context, topics ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if !s.isEnded() {
		s.b.removeLocked(s, topics)
	}
	return nil
}

// Close implements pubsub.Subscription.
func (s *subscription) Close() {
	if s.end(nil) {
		s.b.detach(s)
	}
}

// watch ends s when ctx is done.
func (s *subscription) watch(ctx context.Context) {
	stop := context.AfterFunc(ctx, s.Close)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		stop()
		return
	}
	s.stop = stop
	s.mu.Unlock()
}

// isEnded reports whether s has ended.
func (s *subscription) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// deliver queues msg without blocking. When the buffer is full it ends s
// with pubsub.ErrSlowConsumer and returns false; the caller must then
// detach s.
func (s *subscription) deliver(msg pubsub.Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return true
	}
	select {
	case s.ch <- msg:
		return true
	default:
	}
	s.endLocked(pubsub.ErrSlowConsumer)
	return false
}

// end ends s with err unless it has already ended, and reports whether this
// call ended it.
func (s *subscription) end(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.endLocked(err)
	return true
}

// endLocked ends s with err. s.mu must be held and s must be live.
func (s *subscription) endLocked(err error) {
	s.ended = true
	s.err = err
	close(s.ch)
	if s.stop != nil {
		s.stop()
	}
}
