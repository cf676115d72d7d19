// Package hub is the realtime engine of one node: it holds one broker
// subscription for the whole node, with each topic subscribed while at
// least one local subscription follows it (reference-counted), decodes each
// payload once, puts each stream of indexed events (a channel's messages)
// in order once per node, filling a gap with one query, and hands every
// event to the subscriptions that want it, with no goroutine per
// subscription: one goroutine reads the broker and runs the dispatch.
// Time-driven deliveries (a coalesced event, a warning before a token
// expires) are wakes: a subscription asks for a Tick at a time, and the
// hub keeps every pending wake of the node in one heap behind one timer.
//
// The hub knows nothing of chat or GraphQL. What a subscription wants is a
// Spec, built by the rules (package chat): its topics, what each event
// means for it (Pick), and how a value reaches the resolver (Emit). What a
// subscriber is, is an Operation, implemented by the transport: it
// executes the subscription's selection set over the value just emitted
// and queues the result for its client. Subscriptions whose operations
// have the same Key get one execution per event: the first one's payload
// goes to all of them.
//
// Connecting the two: a transport registers its Operation with Expect,
// which returns a Ticket, plain data that travels in the operation's
// context (WithTicket) down to Subscribe, called by the rules from inside
// the resolver. Once the resolver has returned, the transport calls Start:
// the Spec's Start (history replay) runs on the caller's goroutine, then
// the subscription goes live.
//
// A Hub is safe for concurrent use. Pick and Emit of one subscription are
// never called concurrently.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/pubsub"
)

// ErrNoTicket is returned by Subscribe when its context carries no Ticket:
// the operation did not come through a transport that registered it.
var ErrNoTicket = errors.New("hub: no ticket: this transport cannot carry subscriptions")

// ErrNotSubscribed is returned by Start when the resolver made no
// subscription for the ticket (the rules refused it).
var ErrNotSubscribed = errors.New("hub: no subscription for this ticket")

// ErrClosed ends the subscriptions of a Hub that is closed, and is
// returned by Subscribe afterwards.
var ErrClosed = errors.New("hub: closed")

// ErrSlowConsumer ends every subscription when the node's own broker
// subscription fell behind and was ended; their clients resubscribe.
var ErrSlowConsumer = errors.New("hub: node fell behind its broker")

// Operation is the transport's end of one subscription. The hub calls its
// methods from its dispatch goroutine or from the goroutine that called
// Start, never concurrently for one operation.
type Operation interface {
	// Key says which operations get the same payload for the same
	// value: same document, variables and viewer class.
	Key() string
	// Execute runs the selection set over the value the Spec's Emit just
	// handed to the resolver and returns the encoded result. An error
	// ends the subscription.
	Execute() ([]byte, error)
	// Send queues payload for the client without blocking; during replay
	// (history before live events) it may wait for room in the queue.
	Send(payload []byte, replay bool)
	// End says the subscription is over: err nil when it completed (its
	// client or the rules ended it normally), else why.
	End(err error)
}

// Verdict is what one event means for one subscription.
type Verdict struct {
	// Value is delivered when Deliver is true.
	Value   any
	Deliver bool
	// End, when not nil, ends the subscription after Value (if any).
	End error
	// Follow and Unfollow change the subscription's topics.
	Follow, Unfollow []string
	// CatchUp, when not nil, reads the events of a stream the
	// subscription starts following (with its Spec's Fill) and runs them
	// through Pick before any later event: what was sent between a join
	// and the follow.
	CatchUp *CatchUp
	// Wake, when not nil, asks for a Tick at a later time (see Wake):
	// how a subscription delays or coalesces what it delivers without a
	// timer of its own.
	Wake *Wake
}

// CatchUp names the events a subscription reads back when it starts
// following a stream: those of Stream after index After, on Topic.
type CatchUp struct {
	Topic, Stream string
	After         int
}

// Spec is a subscription as the rules define it.
type Spec struct {
	// Topics are followed from the start.
	Topics []string
	// Start runs once the operation is ready, on the goroutine that calls
	// Hub.Start, before live events flow: it replays history through
	// emit and prepares Pick's state. An error ends the subscription.
	Start func(ctx context.Context, emit func(v any) error) error
	// Pick decides what an event of one of its topics means for this
	// subscription.
	Pick func(topic string, ev any) Verdict
	// Emit hands a value to the resolver, right before the operation's
	// Execute. It must not block.
	Emit func(v any)
	// Fill, when not nil, reads the events of an ordered stream of this
	// subscription's topics that the node missed (see Options.Sequence):
	// those with index after < i < before (no upper bound when before is
	// negative), in order.
	Fill func(ctx context.Context, stream string, after, before int) ([]any, error)
	// Wakes are scheduled when the subscription is made (see Wake).
	Wakes []Wake
}

// Options configure a Hub.
type Options struct {
	// Decode turns a broker payload into the event every Pick sees. It
	// runs once per payload per node.
	Decode func(topic string, data []byte) (any, error)
	// Sequence, when not nil, says whether ev belongs to an ordered
	// stream (a channel's messages) and its index there: the hub delivers
	// each stream's events in index order, without duplicates, and fills
	// gaps with the Fill of a subscription of the topic.
	Sequence func(ev any) (stream string, index int, ok bool)
	// Logger receives the hub's diagnostics; nil discards them.
	Logger *slog.Logger
	// Clock times wakes; nil is SystemClock.
	Clock Clock

	// Observe, when not nil, is called with each event received from the
	// broker before it is dispatched; the function it returns is called
	// once the event has been delivered to this node's subscriptions
	// (tracing).
	Observe func(topic string, ev any) (done func())
}

// Ticket names one registered operation; plain data for a context.
type Ticket uint64

type ticketKey struct{}

// WithTicket returns a context carrying t, for Subscribe to find.
func WithTicket(ctx context.Context, t Ticket) context.Context {
	return context.WithValue(ctx, ticketKey{}, t)
}

// Hub is one node's realtime engine. Use New.
type Hub struct {
	broker     pubsub.Broker
	decode     func(topic string, data []byte) (any, error)
	sequence   func(ev any) (string, int, bool)
	observe    func(topic string, ev any) func()
	log        *slog.Logger
	nextTicket atomic.Uint64
	ctx        context.Context
	cancel     context.CancelFunc
	done       chan struct{}

	// topicMu serializes broker topic changes with the counts they follow.
	topicMu sync.Mutex

	// mu guards the fields below; the dispatch holds it while it runs.
	mu      sync.Mutex
	closed  bool
	bsub    pubsub.Subscription
	topics  map[string]*topic
	tickets map[Ticket]*Subscription
	subs    int
	// sessions are the open connections that can renew their
	// credential, by session id.
	sessions map[string]Renewer

	// The wakes of every subscription, and the one timer armed (at
	// armedAt) for the earliest.
	clock     Clock
	wakes     wakeHeap
	armed     bool
	armedAt   time.Time
	stopTimer func() bool

	// received, executions and delivered are Stats' counts.
	received, executions, delivered atomic.Int64
}

// topic is one followed broker topic.
type topic struct {
	subs map[*Subscription]struct{}
	// heads are the last index delivered per ordered stream of the
	// topic; unknown until its first event.
	heads map[string]int
}

// Subscription is one live subscription of a Hub.
type Subscription struct {
	h      *Hub
	op     Operation
	ticket Ticket
	spec   Spec
	topics map[string]struct{}
	ctx    context.Context
	// live is false while Start runs: events wait in inbox meanwhile.
	live  bool
	inbox []queued
	ended bool
	// wakes are the subscription's pending wakes, by key.
	wakes map[string]*wake
}

type queued struct {
	topic string
	ev    any
}

// maxInbox bounds the events a subscription keeps while its history
// replays; past it the subscription ends, and its client resubscribes.
const maxInbox = 4096

// New returns a Hub on broker and starts its dispatch goroutine.
func New(broker pubsub.Broker, opts Options) (*Hub, error) {
	if opts.Decode == nil {
		return nil, errors.New("hub: Options.Decode is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bsub, err := broker.Subscribe(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("hub: subscribe: %w", err)
	}
	clock := opts.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	h := &Hub{
		broker: broker, decode: opts.Decode, sequence: opts.Sequence, observe: opts.Observe, log: log, clock: clock,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), bsub: bsub,
		topics: map[string]*topic{}, tickets: map[Ticket]*Subscription{},
	}
	go h.run(bsub)
	return h, nil
}

// Close ends every subscription with ErrClosed (their operations' End is
// called) and stops the dispatch.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	if h.armed {
		h.stopTimer()
		h.armed = false
	}
	subs := h.subscribedLocked()
	h.mu.Unlock()
	for _, s := range subs {
		s.end(ErrClosed)
	}
	h.cancel()
	<-h.done
	return nil
}

// subscribedLocked lists the subscriptions made (those with topics or
// wakes alike). h.mu is held.
func (h *Hub) subscribedLocked() []*Subscription {
	var subs []*Subscription
	for _, s := range h.tickets {
		if s.topics != nil && !s.ended {
			subs = append(subs, s)
		}
	}
	return subs
}

// Stats are a hub's counts since it started, for metrics.
type Stats struct {
	// Received counts the events decoded from the broker.
	Received int64
	// Executions counts the executions of live events: one per event and
	// group of operations with the same Key.
	Executions int64
	// Delivered counts the payloads of live events handed to operations.
	Delivered int64
}

// Stats returns the counts now. Safe for concurrent use.
func (h *Hub) Stats() Stats {
	return Stats{Received: h.received.Load(), Executions: h.executions.Load(), Delivered: h.delivered.Load()}
}

// Subscriptions is the number of live subscriptions (for metrics).
func (h *Hub) Subscriptions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subs
}

// Expect registers op; Subscribe, given a context carrying the returned
// Ticket (WithTicket), makes op a subscription's operation. Every Ticket
// must end with Stop, or with Start when the subscription then ends.
func (h *Hub) Expect(op Operation) Ticket {
	t := Ticket(h.nextTicket.Add(1))
	h.mu.Lock()
	h.tickets[t] = &Subscription{h: h, op: op, ticket: t}
	h.mu.Unlock()
	return t
}

// Stop ends the subscription of ticket t from the client's side (its
// operation's End is not called), or forgets a ticket that has none.
func (h *Hub) Stop(t Ticket) {
	h.mu.Lock()
	s := h.tickets[t]
	h.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// Subscribe makes the subscription spec describes for the operation whose
// Ticket ctx carries, following its topics (live on the broker when it
// returns), and returns it; events wait until Start. It fails with
// ErrNoTicket, ErrClosed, or the broker's error.
func (h *Hub) Subscribe(ctx context.Context, spec Spec) (*Subscription, error) {
	t, ok := ctx.Value(ticketKey{}).(Ticket)
	if !ok {
		return nil, ErrNoTicket
	}
	h.mu.Lock()
	s := h.tickets[t]
	switch {
	case h.closed:
		h.mu.Unlock()
		return nil, ErrClosed
	case s == nil || s.topics != nil || s.ended:
		h.mu.Unlock()
		return nil, ErrNoTicket
	}
	s.spec, s.ctx, s.topics = spec, context.WithoutCancel(ctx), map[string]struct{}{}
	for _, w := range spec.Wakes {
		h.wakeLocked(s, w)
	}
	h.mu.Unlock()
	if err := h.follow(ctx, s, spec.Topics); err != nil {
		h.unfollowAll(s)
		return nil, err
	}
	return s, nil
}

// Start runs the subscription of ticket t: the Spec's Start on this
// goroutine (replay, with each value executed for this operation alone),
// then live events. It returns ErrNotSubscribed, and forgets t, when the
// resolver made no subscription; a subscription that ends during Start
// has its operation's End called, and Start returns nil.
func (h *Hub) Start(t Ticket) error {
	h.mu.Lock()
	s := h.tickets[t]
	if s != nil && s.topics == nil {
		delete(h.tickets, t)
	}
	h.mu.Unlock()
	if s == nil || s.topics == nil {
		return ErrNotSubscribed
	}
	if s.spec.Start != nil {
		err := s.spec.Start(s.ctx, func(v any) error {
			s.spec.Emit(v)
			payload, err := s.op.Execute()
			if err != nil {
				return err
			}
			s.op.Send(payload, true)
			return nil
		})
		if err != nil {
			s.end(err)
			return nil
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.ended {
		return nil
	}
	inbox := s.inbox
	s.inbox, s.live = nil, true
	h.subs++
	for _, q := range inbox {
		if s.ended {
			break
		}
		h.deliverLocked([]*Subscription{s}, q.topic, q.ev)
	}
	return nil
}

// Stop ends s from the client's side: End is not called.
func (s *Subscription) Stop() {
	h := s.h
	h.mu.Lock()
	if s.ended {
		h.mu.Unlock()
		return
	}
	if s.topics == nil {
		// Expected, never subscribed: forget the ticket.
		s.ended = true
		delete(h.tickets, s.ticket)
		h.mu.Unlock()
		return
	}
	s.ended = true
	delete(h.tickets, s.ticket)
	h.dropWakesLocked(s)
	if s.live {
		h.subs--
	}
	h.mu.Unlock()
	h.unfollowAll(s)
}

// end ends s with err and tells its operation.
func (s *Subscription) end(err error) {
	h := s.h
	h.mu.Lock()
	if s.ended {
		h.mu.Unlock()
		return
	}
	s.ended = true
	delete(h.tickets, s.ticket)
	h.dropWakesLocked(s)
	if s.live {
		h.subs--
	}
	h.mu.Unlock()
	h.unfollowAll(s)
	s.op.End(err)
}

// follow adds topics to s, subscribing the broker to those no local
// subscription followed before.
func (h *Hub) follow(ctx context.Context, s *Subscription, topics []string) error {
	h.topicMu.Lock()
	defer h.topicMu.Unlock()
	var first []string
	h.mu.Lock()
	for _, name := range topics {
		if _, ok := s.topics[name]; ok {
			continue
		}
		s.topics[name] = struct{}{}
		t := h.topics[name]
		if t == nil {
			t = &topic{subs: map[*Subscription]struct{}{}}
			h.topics[name] = t
			first = append(first, name)
		}
		t.subs[s] = struct{}{}
	}
	bsub := h.bsub
	h.mu.Unlock()
	if len(first) == 0 {
		return nil
	}
	if err := bsub.Add(ctx, first...); err != nil {
		return fmt.Errorf("hub: follow %v: %w", first, err)
	}
	return nil
}

// unfollow removes topics from s, unsubscribing the broker from those no
// local subscription follows any more.
func (h *Hub) unfollow(s *Subscription, topics []string) {
	h.topicMu.Lock()
	defer h.topicMu.Unlock()
	var last []string
	h.mu.Lock()
	for _, name := range topics {
		if _, ok := s.topics[name]; !ok {
			continue
		}
		delete(s.topics, name)
		t := h.topics[name]
		if t == nil {
			continue
		}
		delete(t.subs, s)
		if len(t.subs) == 0 {
			delete(h.topics, name)
			last = append(last, name)
		}
	}
	bsub := h.bsub
	h.mu.Unlock()
	if len(last) > 0 {
		if err := bsub.Remove(context.Background(), last...); err != nil {
			h.log.Warn("hub: unfollow", "topics", last, "err", err)
		}
	}
}

func (h *Hub) unfollowAll(s *Subscription) {
	h.mu.Lock()
	topics := make([]string, 0, len(s.topics))
	for name := range s.topics {
		topics = append(topics, name)
	}
	h.mu.Unlock()
	h.unfollow(s, topics)
}

// run reads the node's broker subscription until Close.
func (h *Hub) run(bsub pubsub.Subscription) {
	defer close(h.done)
	for {
		m, ok := bsub.Next(h.ctx)
		if !ok {
			if h.ctx.Err() != nil {
				return
			}
			bsub = h.resubscribe(bsub.Err())
			if bsub == nil {
				return
			}
			continue
		}
		ev, err := h.decode(m.Topic, m.Data)
		if err != nil {
			h.log.Error("hub: decode event", "topic", m.Topic, "err", err)
			continue
		}
		h.received.Add(1)
		if h.observe == nil {
			h.dispatch(m.Topic, ev)
			continue
		}
		done := h.observe(m.Topic, ev)
		h.dispatch(m.Topic, ev)
		done()
	}
}

// resubscribe replaces a broker subscription that ended (it fell behind,
// or the broker closed): every subscription ends, since events were lost,
// and their clients resubscribe.
func (h *Hub) resubscribe(cause error) pubsub.Subscription {
	h.log.Warn("hub: broker subscription ended; ending every subscription", "err", cause)
	h.mu.Lock()
	subs := h.subscribedLocked()
	h.mu.Unlock()
	for _, s := range subs {
		s.end(ErrSlowConsumer)
	}
	if errors.Is(cause, pubsub.ErrClosed) {
		return nil
	}
	bsub, err := h.broker.Subscribe(h.ctx)
	if err != nil {
		h.log.Error("hub: resubscribe", "err", err)
		return nil
	}
	h.mu.Lock()
	h.bsub = bsub
	h.mu.Unlock()
	return bsub
}

// dispatch hands ev, which arrived on topic, to the topic's subscriptions,
// in order within its stream when it has one.
func (h *Hub) dispatch(name string, ev any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[name]
	if t == nil {
		return
	}
	if h.sequence != nil {
		if stream, index, ok := h.sequence(ev); ok {
			h.sequenceLocked(name, t, stream, index, ev)
			return
		}
	}
	h.deliverLocked(subsOf(t), name, ev)
}

// sequenceLocked delivers ev, index of stream, after any events of the
// stream the node missed, and drops it when delivered already.
func (h *Hub) sequenceLocked(name string, t *topic, stream string, index int, ev any) {
	if t.heads == nil {
		t.heads = map[string]int{}
	}
	head, known := t.heads[stream]
	if known && index <= head {
		return
	}
	if known && index > head+1 {
		for _, missed := range h.fillLocked(t, stream, head, index) {
			h.deliverLocked(subsOf(t), name, missed)
		}
	}
	t.heads[stream] = index
	h.deliverLocked(subsOf(t), name, ev)
}

// fillLocked reads the events between after and before with the Fill of
// one of t's subscriptions: one query per node.
func (h *Hub) fillLocked(t *topic, stream string, after, before int) []any {
	for s := range t.subs {
		if s.spec.Fill == nil {
			continue
		}
		evs, err := s.spec.Fill(h.ctx, stream, after, before)
		if err != nil {
			h.log.Error("hub: fill a gap", "stream", stream, "after", after, "before", before, "err", err)
			return nil
		}
		return evs
	}
	return nil
}

func subsOf(t *topic) []*Subscription {
	subs := make([]*Subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	return subs
}

// delivery is one value for one subscription.
type delivery struct {
	s *Subscription
	v any
}

// deliverLocked runs ev through the Pick of subs and executes each value
// once per operation key. h.mu is held.
func (h *Hub) deliverLocked(subs []*Subscription, name string, ev any) {
	var (
		groups deliveryGroups
		ending []*Subscription
		errs   []error
		moves  []move
	)
	for _, s := range subs {
		if s.ended {
			continue
		}
		if !s.live {
			if len(s.inbox) >= maxInbox {
				ending, errs = append(ending, s), append(errs, ErrSlowConsumer)
				continue
			}
			s.inbox = append(s.inbox, queued{name, ev})
			continue
		}
		v := s.spec.Pick(name, ev)
		if v.Wake != nil {
			h.wakeLocked(s, *v.Wake)
		}
		if len(v.Follow) > 0 || len(v.Unfollow) > 0 || v.CatchUp != nil {
			moves = append(moves, move{s, v})
		}
		if v.Deliver {
			groups.add(s.op.Key(), delivery{s, v.Value}, len(subs))
		}
		if v.End != nil {
			ending, errs = append(ending, s), append(errs, v.End)
		}
	}
	for _, group := range groups.lists {
		h.executeLocked(group)
	}
	if len(ending) > 0 || len(moves) > 0 {
		// Topic changes and endings talk to the broker: outside the lock,
		// in order, before the next event.
		h.mu.Unlock()
		for _, m := range moves {
			h.move(m.s, m.v)
		}
		for i, s := range ending {
			s.end(errs[i])
		}
		h.mu.Lock()
	}
}

// deliveryGroups gathers one event's deliveries by operation key, in the
// order the keys first appear. Most events have one key, or a few, and
// the subscribers that share one come one after another: the last key
// used is tried first, then the others in turn, and a map is built only
// past maxListedKeys. At 300,000 deliveries/s, two map operations on a
// long key per delivery were 5-8 % of the server's CPU (BENCHMARKS.md,
// round 14).
type deliveryGroups struct {
	keys  []string
	lists [][]delivery
	index map[string]int // key → position, past maxListedKeys
	last  int            // the position last added to
}

// maxListedKeys is how many keys deliveryGroups searches in turn before
// it indexes them in a map.
const maxListedKeys = 8

// add appends d to key's group; a new group has room for size deliveries
// (most events have one group: sized for every subscriber).
func (g *deliveryGroups) add(key string, d delivery, size int) {
	i := g.find(key)
	if i < 0 {
		i = len(g.keys)
		g.keys = append(g.keys, key)
		g.lists = append(g.lists, make([]delivery, 0, size))
		if g.index != nil {
			g.index[key] = i
		} else if len(g.keys) > maxListedKeys {
			g.index = make(map[string]int, 2*len(g.keys))
			for j, k := range g.keys {
				g.index[k] = j
			}
		}
	}
	g.last = i
	g.lists[i] = append(g.lists[i], d)
}

// find is key's position, or -1 when it has no group yet.
func (g *deliveryGroups) find(key string) int {
	if g.last < len(g.keys) && g.keys[g.last] == key {
		return g.last
	}
	if g.index != nil {
		if i, ok := g.index[key]; ok {
			return i
		}
		return -1
	}
	for i, k := range g.keys {
		if k == key {
			return i
		}
	}
	return -1
}

// move is a topic change a Verdict asked for.
type move struct {
	s *Subscription
	v Verdict
}

// move applies v's topic changes to s and runs its catch-up. It runs
// between two events of the dispatch, so the catch-up comes before any
// later event of the topic. h.mu is not held.
func (h *Hub) move(s *Subscription, v Verdict) {
	if len(v.Follow) > 0 {
		if err := h.follow(s.ctx, s, v.Follow); err != nil {
			s.end(err)
			return
		}
	}
	if len(v.Unfollow) > 0 {
		h.unfollow(s, v.Unfollow)
	}
	if v.CatchUp == nil || s.spec.Fill == nil {
		return
	}
	evs, err := s.spec.Fill(s.ctx, v.CatchUp.Stream, v.CatchUp.After, -1)
	if err != nil {
		s.end(err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		h.deliverLocked([]*Subscription{s}, v.CatchUp.Topic, ev)
	}
}

// executeLocked executes the first value of a group and sends the payload
// to every member whose value is the same event's.
func (h *Hub) executeLocked(group []delivery) {
	var payload []byte
	for i, d := range group {
		if i == 0 || payload == nil {
			d.s.spec.Emit(d.v)
			h.executions.Add(1)
			p, err := d.s.op.Execute()
			if err != nil {
				h.log.Error("hub: execute", "err", err)
				continue
			}
			payload = p
		}
		d.s.op.Send(payload, false)
		h.delivered.Add(1)
	}
}
