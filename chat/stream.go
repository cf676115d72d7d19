package chat

import (
	"context"
	"errors"
	"sync"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/pubsub"
)

// Stream is the output of a live subscription. C is closed when the
// subscription ends; Err then says why: nil when the subscriber went away,
// an *apperr.Error when the rules ended it (the caller left the channel, the
// channel was deleted, the subscriber fell behind).
type Stream[T any] struct {
	c   chan T
	mu  sync.Mutex
	err error
}

// C delivers the subscription's values.
func (s *Stream[T]) C() <-chan T { return s.c }

// Err is why C was closed; valid once it is.
func (s *Stream[T]) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Stream[T]) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

type streamEndKey struct{}

// WithStreamEnd returns a context whose streams call end just before their
// channel C closes, with the error Err will return. A transport uses it to
// send that error ahead of the stream's completion without a goroutine of
// its own between the stream and the subscriber.
func WithStreamEnd(ctx context.Context, end func(error)) context.Context {
	return context.WithValue(ctx, streamEndKey{}, end)
}

// emitter sends values to a stream's subscriber; false means the
// subscriber is gone.
type emitter[T any] func(T) bool

// eventHandler handles one event of a subscription. It returns an error to
// end the subscription with that error.
type eventHandler[T any] func(topic string, ev *event, emit emitter[T]) error

// runStream forwards sub's events through handle to a new Stream until ctx
// ends, the broker ends sub, or handle fails. prelude, when not nil, runs
// first (history replay). The subscription is closed when the stream ends.
func runStream[T any](ctx context.Context, s *Service, sub pubsub.Subscription, prelude func(emitter[T]) error, handle eventHandler[T]) *Stream[T] {
	st := &Stream[T]{c: make(chan T)}
	emit := func(v T) bool {
		select {
		case st.c <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
	end, _ := ctx.Value(streamEndKey{}).(func(error))
	go func() {
		defer func() {
			sub.Close()
			if end != nil {
				end(st.Err())
			}
			close(st.c)
		}()
		if prelude != nil {
			if err := prelude(emit); err != nil {
				st.setErr(s.streamError(ctx, err))
				return
			}
		}
		for {
			m, ok := sub.Next(ctx)
			if !ok {
				st.setErr(s.streamError(ctx, sub.Err()))
				return
			}
			ev, err := pubsub.Decode(m, decodeEvent)
			if err != nil {
				s.log.ErrorContext(ctx, "decode event", "topic", m.Topic, "err", err)
				continue
			}
			if err := handle(m.Topic, ev, emit); err != nil {
				st.setErr(s.streamError(ctx, err))
				return
			}
		}
	}()
	return st
}

// errStreamDone ends a stream without an error.
var errStreamDone = errors.New("stream done")

// streamError turns why a stream ended into what its subscriber is told.
func (s *Service) streamError(ctx context.Context, err error) error {
	switch {
	case err == nil, errors.Is(err, errStreamDone), ctx.Err() != nil:
		return nil
	case errors.Is(err, pubsub.ErrSlowConsumer):
		return apperr.New(apperr.RateLimited, "subscription fell behind and was ended; subscribe again (messageAdded: with afterIndex of the last message received)")
	case errors.Is(err, pubsub.ErrClosed):
		return apperr.New(apperr.Internal, "server is shutting down; subscribe again")
	}
	if apperr.CodeOf(err) == apperr.Internal {
		s.log.ErrorContext(ctx, "subscription failed", "err", err)
		return apperr.New(apperr.Internal, "subscription failed; subscribe again")
	}
	return err
}

// subscribe starts a broker subscription; UNAVAILABLE-free: a Service
// without a broker refuses with INTERNAL.
func (s *Service) subscribe(ctx context.Context, topics ...string) (pubsub.Subscription, error) {
	if s.broker == nil {
		return nil, apperr.New(apperr.Internal, "live events are not configured on this server")
	}
	sub, err := s.broker.Subscribe(ctx, topics...)
	if err != nil {
		return nil, internal("subscribe", err)
	}
	return sub, nil
}
