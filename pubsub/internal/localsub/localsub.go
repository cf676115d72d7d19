// Package localsub holds what the brokers of package pubsub share about the
// subscriptions of this process: Sub, the local end of one subscription,
// and Registry, which records the topics of each Sub and hands published
// messages to them.
//
// A broker builds its pubsub.Subscription on a Sub, adding Add and Remove,
// and keeps a Registry under a lock of its own; it decides what a topic's
// first and last local subscriber mean (nothing for the memory broker, a
// SUBSCRIBE or UNSUBSCRIBE for the Redis one).
package localsub

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/parleychat/parley/pubsub"
)

// Sub is the local end of a subscription: its queue of messages and how it
// ended. The queue grows with its backlog, up to the buffer size, so an idle
// subscription holds no message memory. Its methods are safe for concurrent
// use.
type Sub struct {
	buffer int
	detach func(*Sub) // called by Close when it ends s
	// ready holds a token while the reader may have something to do: a
	// queued message or the end of s.
	ready chan struct{}

	// mu guards the fields below.
	mu    sync.Mutex
	queue []pubsub.Message // queue[head:] waits for Next
	head  int
	ended bool
	err   error
	stop  func() bool // stops the watch on the Subscribe context
}

// idleQueueCap is the largest queue capacity an emptied queue keeps: a
// burst's backlog is released, a steady trickle allocates nothing.
const idleQueueCap = 16

// New returns a live Sub with room for buffer messages. detach is called by
// the Close that ends the Sub, to make its broker forget it.
func New(buffer int, detach func(*Sub)) *Sub {
	return &Sub{buffer: buffer, detach: detach, ready: make(chan struct{}, 1)}
}

// Next implements pubsub.Subscription.
func (s *Sub) Next(ctx context.Context) (pubsub.Message, bool) {
	for {
		s.mu.Lock()
		if s.head < len(s.queue) {
			m := s.queue[s.head]
			s.queue[s.head] = pubsub.Message{}
			s.head++
			if s.head == len(s.queue) {
				s.head = 0
				s.queue = s.queue[:0]
				if cap(s.queue) > idleQueueCap {
					s.queue = nil
				}
			}
			s.mu.Unlock()
			return m, true
		}
		ended := s.ended
		s.mu.Unlock()
		if ended {
			s.signal() // for the next call, and other readers
			return pubsub.Message{}, false
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return pubsub.Message{}, false
		}
	}
}

// signal wakes the reader without blocking.
func (s *Sub) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Err implements pubsub.Subscription.
func (s *Sub) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close implements pubsub.Subscription: it ends s with a nil Err and, unless
// s had already ended, detaches it.
func (s *Sub) Close() {
	if s.end(nil) {
		s.detach(s)
	}
}

// Watch makes s Close when ctx is done.
func (s *Sub) Watch(ctx context.Context) {
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

// Ended reports whether s has ended.
func (s *Sub) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// End ends s with err unless it has already ended. It does not detach s.
func (s *Sub) End(err error) {
	s.end(err)
}

// deliver queues msg without blocking. When the buffer is full it ends s
// with pubsub.ErrSlowConsumer and returns false.
func (s *Sub) deliver(msg pubsub.Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return true
	}
	if len(s.queue)-s.head >= s.buffer {
		s.endLocked(pubsub.ErrSlowConsumer)
		return false
	}
	if s.head > 0 && len(s.queue) == cap(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, msg)
	s.signal()
	return true
}

// end ends s with err unless it has already ended, and reports whether this
// call ended it.
func (s *Sub) end(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.endLocked(err)
	return true
}

// endLocked ends s with err. s.mu must be held and s must be live. Messages
// already queued stay readable.
func (s *Sub) endLocked(err error) {
	s.ended = true
	s.err = err
	s.signal()
	if s.stop != nil {
		s.stop()
	}
}

// Registry records the registered Subs and their topics. Its zero value is
// empty and ready to use. A Registry does no locking: its owner must
// serialize the calls.
type Registry struct {
	routes map[string]map[*Sub]struct{} // the Subs of each topic
	topics map[*Sub]map[string]struct{} // the topics of each Sub
}

// Join registers s, with no topics.
func (r *Registry) Join(s *Sub) {
	if r.topics == nil {
		r.topics = make(map[*Sub]map[string]struct{})
		r.routes = make(map[string]map[*Sub]struct{})
	}
	r.topics[s] = make(map[string]struct{})
}

// Add adds topics to s and returns the topics s did not have before, and
// among them first, those that no Sub had before. For an s that has not
// joined, or has left or been cleared, it does nothing.
func (r *Registry) Add(s *Sub, topics []string) (added, first []string) {
	own, ok := r.topics[s]
	if !ok {
		return nil, nil
	}
	for _, t := range topics {
		if _, ok := own[t]; ok {
			continue
		}
		own[t] = struct{}{}
		added = append(added, t)
		set := r.routes[t]
		if set == nil {
			set = make(map[*Sub]struct{})
			r.routes[t] = set
			first = append(first, t)
		}
		set[s] = struct{}{}
	}
	return added, first
}

// Remove removes topics from s and returns those that no Sub has any more.
func (r *Registry) Remove(s *Sub, topics []string) (last []string) {
	own := r.topics[s]
	for _, t := range topics {
		if _, ok := own[t]; !ok {
			continue
		}
		delete(own, t)
		if r.unroute(s, t) {
			last = append(last, t)
		}
	}
	return last
}

// Leave removes every topic of s and forgets s. It returns the topics that
// no Sub has any more.
func (r *Registry) Leave(s *Sub) (last []string) {
	for t := range r.topics[s] {
		if r.unroute(s, t) {
			last = append(last, t)
		}
	}
	delete(r.topics, s)
	return last
}

// unroute takes s off the Subs of topic t and reports whether t has none
// left.
func (r *Registry) unroute(s *Sub, t string) bool {
	set := r.routes[t]
	delete(set, s)
	if len(set) > 0 {
		return false
	}
	delete(r.routes, t)
	return true
}

// Deliver queues msg, without blocking, on every Sub of msg.Topic. It
// returns the Subs it ended with pubsub.ErrSlowConsumer because their
// buffer was full; the caller must make them Leave.
func (r *Registry) Deliver(msg pubsub.Message) (slow []*Sub) {
	for s := range r.routes[msg.Topic] {
		if !s.deliver(msg) {
			slow = append(slow, s)
		}
	}
	return slow
}

// Clear forgets every Sub and returns them.
func (r *Registry) Clear() []*Sub {
	subs := slices.Collect(maps.Keys(r.topics))
	r.topics = nil
	r.routes = nil
	return subs
}
