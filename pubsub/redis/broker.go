// Package redis implements pubsub.Broker on a Redis server shared by every node of a deployment. Its types are safe for
// concurrent use by multiple goroutines.
//
// A Broker holds one Redis pub/sub connection per node, whatever the number
// of local subscriptions: a Redis channel "parley:<topic>" is subscribed
// when its first local subscriber arrives and unsubscribed when its last one
// leaves. One reader goroutine fans the messages out to the local
// subscriptions.
//
// The connection is kept healthy by go-redis and by the Broker: when a read
// fails, go-redis's PubSub drops the connection, dials a new one and
// re-subscribes every channel before reading again; the Broker pings the
// connection every few seconds and gives up on it when nothing at all has
// been read for three times as long, so a silently dead connection is
// replaced too. Messages published while the connection is down are lost
// (delivery is at most once); the outage is logged at warn level and the
// recovery at info level.
package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/redistrace"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/internal/localsub"
)

// channelPrefix is put before a topic to make its Redis channel name.
const channelPrefix = "parley:"

// The health check of the pub/sub connection; a Broker keeps the values
// these have when it is created (tests shorten them).
var (
	// pingInterval is how often the pub/sub connection is pinged.
	pingInterval = 5 * time.Second
	// deadAfter is how long a read may find nothing before the connection
	// is taken for dead and replaced.
	deadAfter = 3 * pingInterval
)

const (
	// confirmRetry is how long a subscriber waits for its confirmation
	// before asking again, in case the connection was replaced meanwhile.
	confirmRetry = time.Second
	// minBackoff and maxBackoff bound the pause between failed reads.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

var _ pubsub.Broker = (*Broker)(nil)

// Broker is a pubsub.Broker on Redis pub/sub. A Broker is safe for concurrent
// use.
type Broker struct {
	client   *goredis.Client // publishes
	owned    bool            // client is closed by Close
	psClient *goredis.Client // carries ps, closed by Close
	ps       *goredis.PubSub
	name     string // CLIENT SETNAME of ps's connection
	buffer   int
	log      *slog.Logger
	ping     time.Duration  // pingInterval
	silence  time.Duration  // deadAfter
	tokens   atomic.Uint64  // numbers the confirmation pings
	restored atomic.Int64   // Reconnects
	done     chan struct{}  // closed by Close
	wg       sync.WaitGroup // the goroutines Close waits for

	// cmdMu serializes changes to the set of subscribed channels with the
	// SUBSCRIBE and UNSUBSCRIBE commands that follow them, so that the
	// commands reach Redis in the order of the changes.
	cmdMu sync.Mutex

	// mu guards the fields below.
	mu      sync.Mutex
	closed  bool
	local   localsub.Registry
	pending map[string]chan struct{} // confirmation pings by payload
}

// New returns a Broker that publishes through client and receives on a
// connection of its own, made with client's options and named
// "parley-pubsub-<random id>" (see CLIENT LIST). ctx bounds the first
// connection, which New makes to check that Redis answers. Close does not
// close client.
func New(ctx context.Context, client *goredis.Client, opts pubsub.Options) (*Broker, error) {
	name := "parley-pubsub-" + rand.Text()
	psClient := goredis.NewClient(pubSubOptions(client.Options(), name))
	ps := psClient.Subscribe(ctx)
	if err := ps.Ping(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("pubsub: connect to redis: %w", err), ps.Close(), psClient.Close())
	}
	b := &Broker{
		client:   client,
		psClient: psClient,
		ps:       ps,
		name:     name,
		buffer:   opts.Buffer,
		log:      opts.Logger,
		ping:     pingInterval,
		silence:  deadAfter,
		done:     make(chan struct{}),
		pending:  make(map[string]chan struct{}),
	}
	if b.buffer <= 0 {
		b.buffer = pubsub.DefaultBuffer
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("redis_conn", name)
	b.wg.Go(b.read)
	b.wg.Go(b.keepAlive)
	return b, nil
}

// NewFromURL is New with a client of its own, configured by a redis://,
// rediss:// or unix:// URL (see go-redis's ParseURL); Close closes it.
func NewFromURL(ctx context.Context, url string, opts pubsub.Options) (*Broker, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("pubsub: redis url: %w", err)
	}
	client := goredis.NewClient(o)
	if opts.Trace != nil {
		client.AddHook(redistrace.Hook(opts.Trace))
	}
	b, err := New(ctx, client, opts)
	if err != nil {
		return nil, errors.Join(err, client.Close())
	}
	b.owned = true
	return b, nil
}

// pubSubOptions derives the options of the client that carries the pub/sub
// connection from base, the already normalized options of another client.
func pubSubOptions(base *goredis.Options, name string) *goredis.Options {
	o := *base
	o.ClientName = name
	o.MinIdleConns = 0
	// base holds its client's push-notification processor; sharing it
	// would make the new client's handler registration fail.
	o.PushNotificationProcessor = nil
	// NewClient normalizes timeouts again; undo the first normalization,
	// which turned -2 (no deadline at all) into -1 and -1 (no timeout)
	// into 0, so that it is not read as "default".
	o.ReadTimeout = denormalize(base.ReadTimeout)
	o.WriteTimeout = denormalize(base.WriteTimeout)
	return &o
}

// denormalize returns the timeout setting that go-redis normalizes to d.
func denormalize(d time.Duration) time.Duration {
	switch d {
	case 0:
		return -1
	case -1:
		return -2
	default:
		return d
	}
}

// Publish sends data to the subscribers of topic on every node with one
// PUBLISH. It returns pubsub.ErrClosed after Close.
func (b *Broker) Publish(ctx context.Context, topic string, data []byte) error {
	if b.isClosed() {
		return pubsub.ErrClosed
	}
	if err := b.client.Publish(ctx, channelPrefix+topic, data).Err(); err != nil {
		return fmt.Errorf("pubsub: publish to %q: %w", topic, err)
	}
	return nil
}

// Subscribe starts a subscription to topics that ends when ctx is done. It
// returns once Redis has confirmed the subscription, or ctx's error if ctx
// ends first, or pubsub.ErrClosed after Close.
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
	b.mu.Unlock()
	if err := b.add(ctx, s.Sub, topics); err != nil {
		s.Close()
		return nil, err
	}
	s.Watch(ctx)
	return s, nil
}

// Close ends every subscription with pubsub.ErrClosed, closes the pub/sub
// connection and, for a Broker from NewFromURL, the client.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.local.Clear()
	b.mu.Unlock()
	close(b.done)
	for _, s := range subs {
		s.End(pubsub.ErrClosed)
	}
	err := b.ps.Close()
	b.wg.Wait()
	err = errors.Join(err, b.psClient.Close())
	if b.owned {
		err = errors.Join(err, b.client.Close())
	}
	if err != nil {
		return fmt.Errorf("pubsub: close: %w", err)
	}
	return nil
}

// isClosed reports whether Close was called.
func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// add adds topics to s and returns once they are live.
func (b *Broker) add(ctx context.Context, s *localsub.Sub, topics []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(topics) == 0 {
		return nil
	}
	b.cmdMu.Lock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.cmdMu.Unlock()
		return pubsub.ErrClosed
	}
	if s.Ended() {
		b.mu.Unlock()
		b.cmdMu.Unlock()
		return nil
	}
	added, first := b.local.Add(s, topics)
	b.mu.Unlock()
	if len(first) > 0 {
		channels := channelNames(first)
		// The caller's deadline must not become the write deadline: a
		// write that times out makes go-redis replace the connection.
		if err := b.ps.Subscribe(context.WithoutCancel(ctx), channels...); err != nil {
			b.removeTopics(s, added)
			b.cmdMu.Unlock()
			if b.isClosed() {
				return pubsub.ErrClosed
			}
			return fmt.Errorf("pubsub: subscribe to %v: %w", channels, err)
		}
	}
	b.cmdMu.Unlock()
	// Even when every channel was already subscribed, the SUBSCRIBE that
	// did it may not be confirmed yet.
	if err := b.confirm(ctx); err != nil {
		b.cmdMu.Lock()
		b.removeTopics(s, added)
		b.cmdMu.Unlock()
		return err
	}
	return nil
}

// confirm returns once Redis has processed every command sent on the
// pub/sub connection before confirm was called. It sends a PING with a
// unique payload and waits for the reader to see the answer; Redis answers
// commands in order. If the connection was replaced meanwhile, the answer
// is lost: the PING is sent again every confirmRetry, and on a new
// connection it follows the re-subscription of every channel.
func (b *Broker) confirm(ctx context.Context) error {
	token := "parley-confirm-" + strconv.FormatUint(b.tokens.Add(1), 10)
	answered := make(chan struct{})
	b.mu.Lock()
	b.pending[token] = answered
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, token)
		b.mu.Unlock()
	}()
	retry := time.NewTicker(confirmRetry)
	defer retry.Stop()
	for {
		if err := b.ps.Ping(context.WithoutCancel(ctx), token); err != nil {
			if b.isClosed() {
				return pubsub.ErrClosed
			}
			return fmt.Errorf("pubsub: confirm subscription: %w", err)
		}
		select {
		case <-answered:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-b.done:
			return pubsub.ErrClosed
		case <-retry.C:
		}
	}
}

// removeTopics removes topics from s and unsubscribes the channels that no
// local subscription needs any more. b.cmdMu must be held.
func (b *Broker) removeTopics(s *localsub.Sub, topics []string) {
	b.mu.Lock()
	last := b.local.Remove(s, topics)
	b.mu.Unlock()
	b.unsubscribe(last)
}

// detach removes every topic of s, unsubscribes the channels that no local
// subscription needs any more, and forgets s.
func (b *Broker) detach(s *localsub.Sub) {
	b.cmdMu.Lock()
	defer b.cmdMu.Unlock()
	b.mu.Lock()
	last := b.local.Leave(s)
	b.mu.Unlock()
	b.unsubscribe(last)
}

// unsubscribe unsubscribes the channels of topics, which no local
// subscription has any more (none once b is closed: Close clears the
// registry). b.cmdMu must be held.
func (b *Broker) unsubscribe(topics []string) {
	if len(topics) == 0 {
		return
	}
	channels := channelNames(topics)
	// go-redis forgets the channels before writing UNSUBSCRIBE, and a
	// failed write makes it replace the connection, so the new connection
	// is not subscribed to them either: a failure here needs no undoing.
	if err := b.ps.Unsubscribe(context.Background(), channels...); err != nil && !b.isClosed() {
		b.log.Warn("pubsub: unsubscribe failed; the connection is being replaced", "channels", channels, "err", err)
	}
}

// channelNames returns the Redis channels of topics.
func channelNames(topics []string) []string {
	channels := make([]string, len(topics))
	for i, t := range topics {
		channels[i] = channelPrefix + t
	}
	return channels
}

// read receives from the pub/sub connection until Close. Receive replaces a
// broken connection and re-subscribes on its own; read logs the outage and
// the recovery, and pauses between failures.
func (b *Broker) read() {
	var (
		downSince time.Time // zero while the connection works
		failures  int
	)
	for {
		// A read that times out makes go-redis replace the connection;
		// keepAlive makes sure a healthy one is never silent that long.
		ctx, cancel := context.WithTimeout(context.Background(), b.silence)
		msg, err := b.ps.Receive(ctx)
		cancel()
		if err != nil {
			select {
			case <-b.done:
				return
			default:
			}
			if downSince.IsZero() {
				downSince = time.Now()
				b.log.Warn("pubsub: redis connection lost; reconnecting", "err", err)
			}
			if failures > 0 {
				pause := min(minBackoff<<min(failures-1, 5), maxBackoff)
				select {
				case <-b.done:
					return
				case <-time.After(pause):
				}
			}
			failures++
			continue
		}
		if !downSince.IsZero() {
			b.restored.Add(1)
			b.log.Info("pubsub: redis connection restored", "outage", time.Since(downSince).Round(time.Millisecond))
			downSince = time.Time{}
		}
		failures = 0
		switch m := msg.(type) {
		case *goredis.Message:
			b.fanOut(m)
		case *goredis.Pong:
			b.answer(m.Payload)
		case *goredis.Subscription:
			// Confirmations are tracked with PING instead, see confirm.
		default:
			b.log.Debug("pubsub: ignoring unexpected reply", "type", fmt.Sprintf("%T", msg))
		}
	}
}

// fanOut hands m to the local subscribers of its topic without blocking,
// ending the ones whose buffer is full.
func (b *Broker) fanOut(m *goredis.Message) {
	topic, ok := strings.CutPrefix(m.Channel, channelPrefix)
	if !ok {
		return
	}
	msg := pubsub.Message{Topic: topic, Data: []byte(m.Payload)}
	b.mu.Lock()
	slow := b.local.Deliver(msg)
	b.mu.Unlock()
	for _, s := range slow {
		b.log.Warn("pubsub: ending slow subscriber", "topic", topic, "buffer", b.buffer)
		b.wg.Go(func() { b.detach(s) })
	}
}

// Reconnects returns how often the pub/sub connection was restored after
// it was lost, since New (for metrics). Safe for concurrent use.
func (b *Broker) Reconnects() int64 { return b.restored.Load() }

// answer wakes the confirm call waiting for the PING with payload token.
func (b *Broker) answer(token string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if answered, ok := b.pending[token]; ok {
		delete(b.pending, token)
		close(answered)
	}
}

// keepAlive pings the pub/sub connection every b.ping, so that a
// healthy connection always has something to read and a broken one is
// noticed.
func (b *Broker) keepAlive() {
	tick := time.NewTicker(b.ping)
	defer tick.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-tick.C:
		}
		// A failed ping makes go-redis replace the connection, and read
		// logs the outage.
		if err := b.ps.Ping(context.Background()); err != nil && !b.isClosed() {
			b.log.Debug("pubsub: ping failed", "err", err)
		}
	}
}

// subscription is a Redis Broker's pubsub.Subscription: a localsub.Sub
// whose topic changes go through b, which subscribes and unsubscribes the
// Redis channels.
type subscription struct {
	*localsub.Sub
	b *Broker
}

// Add implements pubsub.Subscription. It returns once Redis has confirmed
// the subscription, or ctx's error if ctx ends first; the topics are then
// not added.
func (s subscription) Add(ctx context.Context, topics ...string) error {
	return s.b.add(ctx, s.Sub, topics)
}

// Remove implements pubsub.Subscription. Messages of the removed topics
// stop at once, even before Redis has processed the UNSUBSCRIBE.
func (s subscription) Remove(ctx context.Context, topics ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.b.cmdMu.Lock()
	defer s.b.cmdMu.Unlock()
	s.b.removeTopics(s.Sub, topics)
	return nil
}
