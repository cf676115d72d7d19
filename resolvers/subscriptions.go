package resolvers

import (
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/graph/model"
)

// feed returns the channel a subscription resolver hands to gqlgen and the
// emitter the rules deliver each value through, converted by conv. The
// channel holds one value: the transport executes the operation right
// after each emit (see package hub), so gqlgen reads every value at once
// and nothing waits in a channel read. An emit that finds the channel
// full (the operation ended before reading its value) drops the value.
func feed[T, U any](conv func(T) U) (chan U, func(T)) {
	ch := make(chan U, 1)
	return ch, func(v T) {
		select {
		case ch <- conv(v):
		default:
		}
	}
}

// same is the conversion of values gqlgen takes as they are.
func same[T any](v T) T { return v }

// subscribed returns ch, or nil when the rules refused the subscription.
func subscribed[U any](ch chan U, err error) (<-chan U, error) {
	if err != nil {
		return nil, err
	}
	return ch, nil
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

func sessionEvent(e *chat.SessionEvent) *model.SessionEvent {
	return &model.SessionEvent{Type: model.SessionEventType(e.Type), ExpiresAt: e.ExpiresAt}
}

// unreadSummary converts the rules' unread summary, passing err on.
func unreadSummary(sum *chat.UnreadSummary, err error) (*model.UnreadSummary, error) {
	if err != nil {
		return nil, err
	}
	return &model.UnreadSummary{Channels: sum.Channels, Messages: sum.Messages, Mentions: sum.Mentions}, nil
}
