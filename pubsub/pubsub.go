// Package pubsub defines how Parley moves realtime events between the
// nodes of a deployment: a Broker fans published payloads out to the
// subscribers of a topic. It deals in topics and bytes only; what the bytes
// mean is its users' business. (Who is online is package presence's.)
//
// Two implementations exist: package pubsub/memory for a single process
// and package pubsub/redis for several nodes sharing one Redis server.
// Package pubsub/pubsubtest holds the conformance tests both must pass.
package pubsub

import (
	"context"
	"errors"
	"log/slog"
)

// DefaultBuffer is the per-subscription buffer used when Options.Buffer is
// zero or negative.
const DefaultBuffer = 256

// Message is one published payload and the topic it came from.
//
// Data may be shared by every subscriber that receives the message: treat it
// as read-only.
type Message struct {
	Topic string
	Data  []byte
}

// Broker delivers published payloads to every current subscriber of the
// topic, on every node sharing the broker. Delivery is at most once; a
// subscriber that falls behind is ended with ErrSlowConsumer, never silently
// skipped.
//
// Implementations are safe for concurrent use by multiple goroutines.
type Broker interface {
	// Publish sends data to the current subscribers of topic. It never
	// waits for subscribers to read.
	Publish(ctx context.Context, topic string, data []byte) error
	// Subscribe starts a subscription to topics (zero or more); it is live
	// when Subscribe returns: anything published after that reaches it (for
	// Redis: after the SUBSCRIBE is confirmed by the server). The
	// subscription ends when ctx is done.
	Subscribe(ctx context.Context, topics ...string) (Subscription, error)
	// Close ends every subscription with ErrClosed and releases the
	// broker's resources. Later calls to Publish and Subscribe return
	// ErrClosed; later calls to Close return nil.
	Close() error
}

// Subscription is one subscriber's view of a Broker. Its methods are safe for
// concurrent use by multiple goroutines; Next is meant to be called by one.
type Subscription interface {
	// Next waits for the next message, in publish order per topic, and
	// returns it with true. It returns false when ctx is done, and once the
	// subscription has ended (its context done, Close, overflow, broker
	// closed) and every message queued before that has been returned.
	// Messages wait in a buffer of at most Options.Buffer.
	Next(ctx context.Context) (Message, bool)
	// Add and Remove change the topics of a live subscription (live when
	// they return, as Subscribe). On a subscription that has already ended
	// they do nothing and return nil: Err says why it ended.
	Add(ctx context.Context, topics ...string) error
	Remove(ctx context.Context, topics ...string) error
	// Err says why the subscription ended: nil after Close or when its
	// context ended, ErrSlowConsumer after overflow, ErrClosed when the
	// broker closed. Valid once Next has returned false for a ctx that is
	// not done.
	Err() error
	// Close ends the subscription; it may be called more than once.
	Close()
}

// ErrSlowConsumer is the Err of a subscription whose buffer was full when a
// message arrived for it.
var ErrSlowConsumer = errors.New("pubsub: subscriber fell behind and was ended")

// ErrClosed is returned by the methods of a closed Broker, and is
// the Err of the subscriptions a Broker's Close ended.
var ErrClosed = errors.New("pubsub: broker closed")

// Options shared by both brokers.
type Options struct {
	// Buffer is the per-subscription buffer of messages, DefaultBuffer when
	// zero or negative.
	Buffer int
	// Logger receives the broker's diagnostics; slog.Default() when nil.
	Logger *slog.Logger
	// Trace, when not nil, is called as a broker that talks to a server
	// sends a command on a caller's behalf (a publish), with the caller's
	// context and the command's name; the function it returns is called
	// with the command's error when it ends. The in-process broker sends
	// none.
	Trace func(ctx context.Context, operation string) (end func(error))
}
