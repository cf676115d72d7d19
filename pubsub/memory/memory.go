// Package memory implements pubsub.Broker inside one process, for
// single-node deployments and tests. Its types are safe for concurrent use
// by multiple goroutines.
package memory

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/internal/localsub"
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
	local  localsub.Registry
}

// New returns an empty Broker configured by opts.
func New(opts pubsub.Options) *Broker {
	b := &Broker{
		buffer: opts.Buffer,
		log:    opts.Logger,
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
	for _, s := range b.local.Deliver(msg) {
		b.log.Warn("pubsub: ending slow subscriber", "topic", topic, "buffer", b.buffer)
		b.local.Leave(s)
	}
	return nil
}

// Subscribe starts a subscription to topics that ends when ctx is done. It
// returns pubsub.ErrClosed after Close, or ctx's error if ctx is done.
func (b *Broker) Subscribe(ctx context.Context, topics ...string) (pubsub.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := subscription{Sub: localsub.New(b.buffer, b.detach), b: b}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, pubsub.ErrClosed
	}
	b.local.Join(s.Sub)
	b.local.Add(s.Sub, topics)
	b.mu.Unlock()
	s.Watch(ctx)
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
	subs := b.local.Clear()
	b.mu.Unlock()
	for _, s := range subs {
		s.End(pubsub.ErrClosed)
	}
	return nil
}

// detach forgets s entirely.
func (b *Broker) detach(s *localsub.Sub) {
	b.mu.Lock()
	b.local.Leave(s)
	b.mu.Unlock()
}

// subscription is a memory Broker's pubsub.Subscription: a localsub.Sub
// that changes its topics in b's registry.
type subscription struct {
	*localsub.Sub
	b *Broker
}

// Add implements pubsub.Subscription. It returns ctx's error if ctx is done.
func (s subscription) Add(ctx context.Context, topics ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if !s.Ended() {
		s.b.local.Add(s.Sub, topics)
	}
	return nil
}

// Remove implements pubsub.Subscription. It returns ctx's error if ctx is
// done.
func (s subscription) Remove(ctx context.Context, topics ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if !s.Ended() {
		s.b.local.Remove(s.Sub, topics)
	}
	return nil
}
