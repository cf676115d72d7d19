package chat

import (
	"context"
	"time"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/pubsub"
)

// TypingEvent is someone typing in a channel.
type TypingEvent struct {
	Channel *models.Channel
	User    *models.User
	At      time.Time
}

// MemberEvent is a change to a member, with what changed.
type MemberEvent struct {
	Member  *models.Member
	Reasons []string
}

// ChannelEvent is a change to one of the caller's channels; Reasons say
// what changed in an UPDATED one.
type ChannelEvent struct {
	Type    ChannelEventType
	Channel *models.Channel
	Reasons []string
}

// UserEvent is a change to a user, with what changed.
type UserEvent struct {
	User    *models.User
	Reasons []string
}

// subscribeChannel authorizes a subscription to one channel's events and
// starts it: members only, NOT_FOUND for a private channel the caller is
// not in (as for queries).
func (s *Service) subscribeChannel(ctx context.Context, channelID string) (viewer, *access, pubsub.Subscription, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return v, nil, nil, err
	}
	a, err := loadAccess(s.store.DB(ctx), v, channelID)
	if err != nil {
		return v, nil, nil, internal("subscribe", err)
	}
	if err := a.requireMember(); err != nil {
		return v, nil, nil, err
	}
	sub, err := s.subscribe(ctx, channelTopic(channelID))
	return v, a, sub, err
}

// channelGuard ends a channel subscription when the caller stops being a
// member or the channel is deleted. It runs before each handler.
func channelGuard(v viewer, ev *event) error {
	switch ev.Kind {
	case evMemberLeft:
		if ev.Member != nil && ev.Member.UserID == v.UserID {
			return apperr.New(apperr.Forbidden, "you are no longer a member of this channel")
		}
	case evChannelRemoved:
		return apperr.New(apperr.NotFound, "the channel was deleted")
	}
	return nil
}

// channelStream is a subscription to one channel that forwards the events
// pick returns a value for. Events about messages before the caller's
// shared history are left out.
func channelStream[T any](ctx context.Context, s *Service, channelID string, pick func(v viewer, ev *event) (T, bool)) (*Stream[T], error) {
	v, a, sub, err := s.subscribeChannel(ctx, channelID)
	if err != nil {
		return nil, err
	}
	return runStream(ctx, s, sub, nil, func(_ string, ev *event, emit emitter[T]) error {
		if ev.Message != nil && ev.Message.Index < a.me.HistoryStart {
			return nil
		}
		if val, ok := pick(v, ev); ok && !emit(val) {
			return errStreamDone
		}
		return channelGuard(v, ev)
	}), nil
}

// MessageUpdated streams edits in a channel. Members only.
func (s *Service) MessageUpdated(ctx context.Context, channelID string) (*Stream[*models.Message], error) {
	return channelStream(ctx, s, channelID, func(_ viewer, ev *event) (*models.Message, bool) {
		return ev.Message, ev.Kind == evMessageUpdated
	})
}

// MessageRemoved streams deletions in a channel, as tombstones. Members only.
func (s *Service) MessageRemoved(ctx context.Context, channelID string) (*Stream[*models.Message], error) {
	return channelStream(ctx, s, channelID, func(_ viewer, ev *event) (*models.Message, bool) {
		return ev.Message, ev.Kind == evMessageRemoved
	})
}

// Typing streams other members' typingStarted (started) or typingEnded
// events in a channel; the caller's own are not echoed. Members only.
// A typingStarted for a user this stream already saw start, and not end,
// is left out: it is another node taking the spell over (see
// typingTimers).
func (s *Service) Typing(ctx context.Context, channelID string, started bool) (*Stream[*TypingEvent], error) {
	typing := map[string]bool{} // users whose typingStarted this stream saw, until their typingEnded
	return channelStream(ctx, s, channelID, func(v viewer, ev *event) (*TypingEvent, bool) {
		if ev.User == nil || ev.User.ID == v.UserID {
			return nil, false
		}
		switch ev.Kind {
		case evTypingStarted:
			if typing[ev.User.ID] {
				return nil, false
			}
			typing[ev.User.ID] = true
			if !started {
				return nil, false
			}
		case evTypingEnded:
			delete(typing, ev.User.ID)
			if started {
				return nil, false
			}
		default:
			return nil, false
		}
		return &TypingEvent{Channel: ev.Channel, User: ev.User, At: ev.At}, true
	})
}

// MemberUpdated streams role, attribute and read-state changes of a
// channel's members. Members only.
func (s *Service) MemberUpdated(ctx context.Context, channelID string) (*Stream[*MemberEvent], error) {
	return channelStream(ctx, s, channelID, func(_ viewer, ev *event) (*MemberEvent, bool) {
		if ev.Kind != evMemberUpdated {
			return nil, false
		}
		return &MemberEvent{Member: ev.Member, Reasons: ev.Reasons}, true
	})
}

// MemberJoined streams members joining or being added. Members only.
func (s *Service) MemberJoined(ctx context.Context, channelID string) (*Stream[*models.Member], error) {
	return channelStream(ctx, s, channelID, func(_ viewer, ev *event) (*models.Member, bool) {
		return ev.Member, ev.Kind == evMemberJoined
	})
}

// MemberLeft streams members leaving or being removed. Members only; the
// caller's own departure is delivered, then ends the subscription.
func (s *Service) MemberLeft(ctx context.Context, channelID string) (*Stream[*models.Member], error) {
	return channelStream(ctx, s, channelID, func(_ viewer, ev *event) (*models.Member, bool) {
		return ev.Member, ev.Kind == evMemberLeft
	})
}

// myChannelIDs lists the channels the caller has joined (and, with
// invited, those they are invited to), within their token's grants.
func (s *Service) myChannelIDs(ctx context.Context, v viewer, invited bool) ([]string, error) {
	var ids []string
	q := s.store.DB(ctx).Model(&models.Member{}).Where("members.user_id = ?", v.UserID)
	if !invited {
		q = q.Where("members.status = ?", models.MemberJoined)
	}
	if v.grants != nil {
		q = v.scopeChannels(q.Joins("JOIN channels ON channels.id = members.channel_id"))
	}
	err := q.Pluck("members.channel_id", &ids).Error
	return ids, err
}

// subscribeMine subscribes to the user's private topic and the topics of
// all their channels (with invited, also those they are invited to).
func (s *Service) subscribeMine(ctx context.Context, v viewer, invited bool) (pubsub.Subscription, []string, error) {
	sub, err := s.subscribe(ctx, userTopic(v.UserID))
	if err != nil {
		return nil, nil, err
	}
	ids, err := s.myChannelIDs(ctx, v, invited)
	if err == nil {
		topics := make([]string, len(ids))
		for i, id := range ids {
			topics[i] = channelTopic(id)
		}
		err = sub.Add(ctx, topics...)
	}
	if err != nil {
		sub.Close()
		return nil, nil, internal("subscribe to my channels", err)
	}
	return sub, ids, nil
}

// ChannelEvents streams changes to the caller's channels, those they are
// invited to included: added, invited, joined, left or removed, updated
// (with what changed) and deleted.
func (s *Service) ChannelEvents(ctx context.Context) (*Stream[*ChannelEvent], error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	sub, _, err := s.subscribeMine(ctx, v, true)
	if err != nil {
		return nil, err
	}
	return runStream(ctx, s, sub, nil, func(_ string, ev *event, emit emitter[*ChannelEvent]) error {
		if ev.Channel == nil || !v.sees(ev.Channel) {
			return nil
		}
		var out *ChannelEvent
		switch ev.Kind {
		case evMyChannel:
			out = &ChannelEvent{Type: ev.ChannelEvent, Channel: ev.Channel}
			if err := followChannel(ctx, sub, ev); err != nil {
				return err
			}
		case evChannelUpdated:
			out = &ChannelEvent{Type: ChannelUpdated, Channel: ev.Channel, Reasons: ev.Reasons}
		case evChannelRemoved:
			out = &ChannelEvent{Type: ChannelRemoved, Channel: ev.Channel}
			if err := sub.Remove(ctx, channelTopic(ev.Channel.ID)); err != nil {
				return internal("unfollow channel", err)
			}
		default:
			return nil
		}
		if !emit(out) {
			return errStreamDone
		}
		return nil
	}), nil
}

// followChannel adds or removes a channel topic after a my.channel event.
func followChannel(ctx context.Context, sub pubsub.Subscription, ev *event) error {
	var err error
	switch ev.ChannelEvent {
	case ChannelAdded, ChannelJoined, ChannelInvited:
		err = sub.Add(ctx, channelTopic(ev.Channel.ID))
	case ChannelLeft, ChannelRemoved:
		err = sub.Remove(ctx, channelTopic(ev.Channel.ID))
	}
	return internal("follow channel", err)
}

// UserUpdated streams profile and presence changes of the user with that
// identity. NOT_FOUND when there is none.
func (s *Service) UserUpdated(ctx context.Context, identity string) (*Stream[*UserEvent], error) {
	u, err := s.User(ctx, identity)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, apperr.New(apperr.NotFound, "user %q not found", identity)
	}
	sub, err := s.subscribe(ctx, profileTopic(u.ID))
	if err != nil {
		return nil, err
	}
	return runStream(ctx, s, sub, nil, func(_ string, ev *event, emit emitter[*UserEvent]) error {
		if ev.Kind == evUserUpdated && !emit(&UserEvent{User: ev.User, Reasons: ev.Reasons}) {
			return errStreamDone
		}
		return nil
	}), nil
}
