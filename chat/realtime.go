package chat

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/models"
)

// Live subscriptions. Each method authorizes the caller, then registers
// with the node's hub a hub.Spec: the topics to follow and what each event
// means for this subscriber (which values it gets, and when the rules end
// the subscription). The hub applies it to every event, with no goroutine
// per subscription; emit hands each value to the resolver, and must not
// block. Registration needs the hub.Ticket of the transport's operation in
// ctx (see package hub); a context without one is refused with INTERNAL.
//
// A subscription ends with an *apperr.Error when the rules end it:
// FORBIDDEN when the caller leaves or is removed from the channel (after
// memberLeft delivers their own departure), NOT_FOUND when the channel is
// deleted.

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

// replayBatch is how many stored messages one replay query reads.
const replayBatch = 100

// DecodeEvent decodes a broker payload for the hub (hub.Options.Decode).
// The event may be shared by every subscriber of the node: read-only.
func DecodeEvent(_ string, data []byte) (any, error) { return decodeEvent(data) }

// TraceParentOf returns the W3C trace context an event decoded by
// DecodeEvent carries ("" for none, or for anything else), for the
// hub's delivery spans.
func TraceParentOf(ev any) string {
	if e, ok := ev.(*event); ok {
		return e.TraceParent
	}
	return ""
}

// SequenceOf says which ordered stream an event belongs to, for the hub
// (hub.Options.Sequence): a channel's messages, by index.
func SequenceOf(ev any) (stream string, index int, ok bool) {
	e, isEvent := ev.(*event)
	if !isEvent || e.Kind != evMessageAdded || e.Message == nil {
		return "", 0, false
	}
	return e.Message.ChannelID, e.Message.Index, true
}

// register hands spec to the hub for the operation of ctx.
func (s *Service) register(ctx context.Context, spec hub.Spec) error {
	if s.hub == nil {
		return apperr.New(apperr.Internal, "live events are not configured on this server")
	}
	if _, err := s.hub.Subscribe(ctx, spec); err != nil {
		if errors.Is(err, hub.ErrClosed) {
			return apperr.New(apperr.Internal, "server is shutting down; subscribe again")
		}
		return internal("subscribe", err)
	}
	return nil
}

// clock is the hub's clock, which times wakes.
func (s *Service) clock() hub.Clock {
	if s.hub == nil {
		return hub.SystemClock{}
	}
	return s.hub.Clock()
}

// authorizeChannel checks that the caller may follow one channel's events:
// members only, NOT_FOUND for a private channel the caller is not in (as
// for queries). It returns the caller's access, with their membership.
func (s *Service) authorizeChannel(ctx context.Context, channelID string) (viewer, *access, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return v, nil, err
	}
	a, err := loadAccess(s.store.DB(ctx), v, channelID)
	if err != nil {
		return v, nil, internal("subscribe", err)
	}
	return v, a, a.requireMember()
}

// channelGuard ends a channel subscription when the caller stops being a
// member or the channel is deleted.
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

// channelSpec follows one channel and delivers the values pick returns.
func channelSpec[T any](v viewer, channelID string, emit func(T), pick func(ev *event) (T, bool)) hub.Spec {
	return hub.Spec{
		Topics: []string{channelTopic(channelID)},
		Emit:   func(x any) { emit(x.(T)) },
		Pick: func(_ string, e any) hub.Verdict {
			ev, ok := e.(*event)
			if !ok {
				return hub.Verdict{}
			}
			out, deliver := pick(ev)
			return hub.Verdict{Value: out, Deliver: deliver, End: channelGuard(v, ev)}
		},
	}
}

// channelStream authorizes and registers a subscription to one channel.
// Events about messages before the caller's shared history are left out.
func channelStream[T any](ctx context.Context, s *Service, channelID string, emit func(T), pick func(v viewer, ev *event) (T, bool)) error {
	v, a, err := s.authorizeChannel(ctx, channelID)
	if err != nil {
		return err
	}
	historyStart := a.historyStart() // not a: the subscription keeps what it captures
	return s.register(ctx, channelSpec(v, channelID, emit, func(ev *event) (T, bool) {
		if ev.Message != nil && ev.Message.Index < historyStart {
			var none T
			return none, false
		}
		return pick(v, ev)
	}))
}

// MessageUpdated streams edits in a channel. Members only.
func (s *Service) MessageUpdated(ctx context.Context, channelID string, emit func(*models.Message)) error {
	return channelStream(ctx, s, channelID, emit, func(_ viewer, ev *event) (*models.Message, bool) {
		return ev.Message, ev.Kind == evMessageUpdated
	})
}

// MessageRemoved streams deletions in a channel, as tombstones. Members only.
func (s *Service) MessageRemoved(ctx context.Context, channelID string, emit func(*models.Message)) error {
	return channelStream(ctx, s, channelID, emit, func(_ viewer, ev *event) (*models.Message, bool) {
		return ev.Message, ev.Kind == evMessageRemoved
	})
}

// Typing streams other members' typingStarted (started) or typingEnded
// events in a channel; the caller's own are not echoed. Members only.
// A typingStarted for a user this subscription saw start, and not end, is
// left out: it is another node taking the spell over (see typingTimers).
func (s *Service) Typing(ctx context.Context, channelID string, started bool, emit func(*TypingEvent)) error {
	typing := map[string]bool{} // users whose typingStarted this subscription saw, until their typingEnded
	return channelStream(ctx, s, channelID, emit, func(v viewer, ev *event) (*TypingEvent, bool) {
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
func (s *Service) MemberUpdated(ctx context.Context, channelID string, emit func(*MemberEvent)) error {
	return channelStream(ctx, s, channelID, emit, func(_ viewer, ev *event) (*MemberEvent, bool) {
		if ev.Kind != evMemberUpdated {
			return nil, false
		}
		return &MemberEvent{Member: ev.Member, Reasons: ev.Reasons}, true
	})
}

// MemberJoined streams members joining or being added. Members only.
func (s *Service) MemberJoined(ctx context.Context, channelID string, emit func(*models.Member)) error {
	return channelStream(ctx, s, channelID, emit, func(_ viewer, ev *event) (*models.Member, bool) {
		return ev.Member, ev.Kind == evMemberJoined
	})
}

// MemberLeft streams members leaving or being removed. Members only; the
// caller's own departure is delivered, then ends the subscription.
func (s *Service) MemberLeft(ctx context.Context, channelID string, emit func(*models.Member)) error {
	return channelStream(ctx, s, channelID, emit, func(_ viewer, ev *event) (*models.Member, bool) {
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

// myTopics is the user's private topic and the topics of their channels
// (with invited, also those they are invited to).
func (s *Service) myTopics(ctx context.Context, v viewer, invited bool) ([]string, []string, error) {
	ids, err := s.myChannelIDs(ctx, v, invited)
	if err != nil {
		return nil, nil, internal("subscribe to my channels", err)
	}
	topics := []string{userTopic(v.UserID)}
	for _, id := range ids {
		topics = append(topics, channelTopic(id))
	}
	return topics, ids, nil
}

// follows is the topic change a my.channel event asks for.
func follows(ev *event) (follow, unfollow []string) {
	switch ev.ChannelEvent {
	case ChannelAdded, ChannelJoined, ChannelInvited:
		return []string{channelTopic(ev.Channel.ID)}, nil
	case ChannelLeft, ChannelRemoved:
		return nil, []string{channelTopic(ev.Channel.ID)}
	}
	return nil, nil
}

// ChannelEvents streams changes to the caller's channels, those they are
// invited to included: added, invited, joined, left or removed, updated
// (with what changed) and deleted. UPDATED also comes when a message
// arrives in one of them (LAST_MESSAGE), when the caller's read horizon
// moves (LAST_READ) and when the caller's status changes in place, as an
// invitation accepted (STATUS); LAST_MESSAGE and LAST_READ are coalesced
// per channel (see ChannelUpdateWindow).
func (s *Service) ChannelEvents(ctx context.Context, emit func(*ChannelEvent)) error {
	v, err := s.viewer(ctx)
	if err != nil {
		return err
	}
	topics, _, err := s.myTopics(ctx, v, true)
	if err != nil {
		return err
	}
	updates := newChannelUpdates(s.clock())
	return s.register(ctx, hub.Spec{
		Topics: topics,
		Emit:   func(x any) { emit(x.(*ChannelEvent)) },
		Pick: func(_ string, e any) hub.Verdict {
			switch ev := e.(type) {
			case hub.Tick:
				return updates.tick(ev)
			case *event:
				return pickChannelEvent(v, updates, ev)
			}
			return hub.Verdict{}
		},
	})
}

// pickChannelEvent is what ev means for a channelEvents subscription of v.
func pickChannelEvent(v viewer, updates channelUpdates, ev *event) hub.Verdict {
	ch := ev.Channel
	if ev.Kind == evMessageAdded && ev.Message != nil {
		ch = ev.Message.Channel // nil in an event read back from the database: its live one follows
	}
	if ch == nil || !v.sees(ch) {
		return hub.Verdict{}
	}
	switch ev.Kind {
	case evMyChannel:
		follow, unfollow := follows(ev)
		if len(unfollow) > 0 {
			updates.forget(ch.ID)
		}
		return hub.Verdict{Value: &ChannelEvent{Type: ev.ChannelEvent, Channel: ch}, Deliver: true, Follow: follow, Unfollow: unfollow}
	case evChannelUpdated:
		return hub.Verdict{Value: &ChannelEvent{Type: ChannelUpdated, Channel: ch, Reasons: ev.Reasons}, Deliver: true}
	case evChannelRemoved:
		updates.forget(ch.ID)
		return hub.Verdict{Value: &ChannelEvent{Type: ChannelRemoved, Channel: ch}, Deliver: true,
			Unfollow: []string{channelTopic(ch.ID)}}
	case evMessageAdded:
		return updates.channel(ch, ReasonLastMessage)
	case evMemberUpdated:
		if ev.Member == nil || ev.Member.UserID != v.UserID {
			return hub.Verdict{}
		}
		switch {
		case slices.Contains(ev.Reasons, ReasonStatus):
			return hub.Verdict{Value: &ChannelEvent{Type: ChannelUpdated, Channel: ch, Reasons: []string{ReasonStatus}}, Deliver: true}
		case slices.Contains(ev.Reasons, ReasonLastRead):
			return updates.channel(ch, ReasonLastRead)
		}
	}
	return hub.Verdict{}
}

// UserUpdated streams profile and presence changes of the user with that
// identity, or, with identities instead (not nil), of each listed user (at
// most MaxBatch). Exactly one of the two: BAD_USER_INPUT otherwise.
// NOT_FOUND, naming it, for an identity of no user.
func (s *Service) UserUpdated(ctx context.Context, identity *string, identities []string, emit func(*UserEvent)) error {
	var err error
	switch {
	case (identity == nil) == (identities == nil):
		return apperr.New(apperr.BadUserInput, "give identity or identities, exactly one of the two")
	case identity != nil:
		identities = []string{*identity}
	default:
		if identities, err = batchIDs("identities", "users", identities); err != nil {
			return err
		}
	}
	if _, err := s.viewer(ctx); err != nil {
		return err
	}
	var users []*models.User
	if err := s.store.DB(ctx).Select("id", "identity").Where("identity IN ?", identities).Find(&users).Error; err != nil {
		return internal("load users", err)
	}
	found := byID(identities, users, func(u *models.User) string { return u.Identity })
	topics := make([]string, len(found))
	for i, u := range found {
		if u == nil {
			return apperr.New(apperr.NotFound, "user %q not found", identities[i])
		}
		topics[i] = profileTopic(u.ID)
	}
	return s.register(ctx, hub.Spec{
		Topics: topics,
		Emit:   func(x any) { emit(x.(*UserEvent)) },
		Pick: func(_ string, e any) hub.Verdict {
			ev, ok := e.(*event)
			if !ok || ev.Kind != evUserUpdated {
				return hub.Verdict{}
			}
			return hub.Verdict{Value: &UserEvent{User: ev.User, Reasons: ev.Reasons}, Deliver: true}
		},
	})
}
