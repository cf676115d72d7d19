package resolvers

import (
	"context"
	"errors"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/graph/model"
)

type subscriptionErrorsKey struct{}

// WithSubscriptionErrors marks a context whose transport can deliver an
// error that ends a subscription (WebSocket). Over other transports a
// stream that ends with an error just completes.
func WithSubscriptionErrors(ctx context.Context) context.Context {
	return context.WithValue(ctx, subscriptionErrorsKey{}, true)
}

// subscribe hands a chat stream's channel to gqlgen, through the Relay of
// ctx when it has one. Open the stream with streamContext, so that an error
// that ends it reaches the subscriber.
func subscribe[T any](ctx context.Context, st *chat.Stream[T], err error) (<-chan T, error) {
	if err != nil {
		return nil, err
	}
	r, ok := ctx.Value(relayKey{}).(*Relay)
	if !ok {
		return st.C(), nil
	}
	// gqlgen reads one value per Feed, right after it.
	ch := make(chan T, 1)
	r.recv = func(ctx context.Context) (any, bool) {
		select {
		case v, ok := <-st.C():
			return v, ok
		case <-ctx.Done():
			return nil, false
		}
	}
	r.feed = func(v any) { ch <- v.(T) }
	r.end = sync.OnceFunc(func() { close(ch) })
	return ch, nil
}

type relayKey struct{}

// Relay lets a response middleware take each value of a subscription before
// gqlgen executes the selection set over it, and decide whether gqlgen
// executes it at all: a middleware that already holds the response for
// that value (computed for another subscriber) returns it instead. Only
// streams whose values go to gqlgen unconverted connect to a Relay. A Relay
// belongs to one subscription operation and is used by the goroutine that
// runs it: gqlgen calls the resolver, which connects the Relay, before the
// first response of that goroutine.
type Relay struct {
	recv func(ctx context.Context) (any, bool)
	feed func(any)
	end  func()
}

// WithRelay returns a context in which the subscription resolver connects
// its stream to r.
func WithRelay(ctx context.Context, r *Relay) context.Context {
	return context.WithValue(ctx, relayKey{}, r)
}

// Connected reports whether the resolver connected a stream; if not, gqlgen
// reads the subscription's values itself.
func (r *Relay) Connected() bool { return r.recv != nil }

// Next waits for the stream's next value. It returns false when the stream
// has ended (call End) or ctx is done. The Relay must be connected.
func (r *Relay) Next(ctx context.Context) (any, bool) { return r.recv(ctx) }

// Feed hands v, a value Next returned, to gqlgen: its next read of the
// subscription returns v. Call it at most once per value, right before
// gqlgen's next read.
func (r *Relay) Feed(v any) { r.feed(v) }

// End tells gqlgen that the stream has ended. Calls after the first do
// nothing.
func (r *Relay) End() { r.end() }

// subscribeAs is subscribe for a stream whose values gqlgen needs in
// another type: a goroutine converts each value with conv.
func subscribeAs[T, U any](ctx context.Context, conv func(T) U, st *chat.Stream[T], err error) (<-chan U, error) {
	if err != nil {
		return nil, err
	}
	out := make(chan U)
	go func() {
		defer close(out)
		for v := range st.C() {
			select {
			case out <- conv(v):
			case <-ctx.Done():
				// The stream ends with ctx; drain it so its goroutine exits.
				for range st.C() {
				}
				return
			}
		}
	}()
	return out, nil
}

// streamContext is the context to open a subscription's chat stream with:
// on transports that can deliver an error that ends a subscription
// (WebSocket), the subscriber receives the error that ends the stream, with
// its extensions.code, before the subscription completes.
func streamContext(ctx context.Context) context.Context {
	if ctx.Value(subscriptionErrorsKey{}) == nil {
		return ctx
	}
	return chat.WithStreamEnd(ctx, func(err error) {
		if err != nil {
			transport.AddSubscriptionError(ctx, subscriptionError(ctx, err))
		}
	})
}

// subscriptionError presents the error that ended a stream; chat ends
// streams only with *apperr.Error values, anything else shows as INTERNAL.
func subscriptionError(ctx context.Context, err error) *gqlerror.Error {
	ae, ok := errors.AsType[*apperr.Error](err)
	if !ok {
		ae = apperr.New(apperr.Internal, "internal error")
	}
	gerr := gqlerror.ErrorPathf(graphql.GetPath(ctx), "%s", ae.Message)
	gerr.Extensions = map[string]any{"code": string(ae.Code)}
	return gerr
}

func typingEvent(e *chat.TypingEvent) *model.TypingEvent {
	return &model.TypingEvent{Channel: e.Channel, User: e.User, At: e.At}
}

func memberEvent(e *chat.MemberEvent) *model.MemberEvent {
	out := &model.MemberEvent{Member: e.Member}
	for _, r := range e.Reasons {
		out.Reasons = append(out.Reasons, model.MemberUpdateReason(r))
	}
	return out
}

func channelEvent(e *chat.ChannelEvent) *model.ChannelEvent {
	out := &model.ChannelEvent{Type: model.ChannelEventType(e.Type), Channel: e.Channel, Reasons: []model.ChannelUpdateReason{}}
	for _, r := range e.Reasons {
		out.Reasons = append(out.Reasons, model.ChannelUpdateReason(r))
	}
	return out
}

func userEvent(e *chat.UserEvent) *model.UserEvent {
	out := &model.UserEvent{User: e.User}
	for _, r := range e.Reasons {
		out.Reasons = append(out.Reasons, model.UserUpdateReason(r))
	}
	return out
}
