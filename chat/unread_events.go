package chat

import (
	"context"
	"slices"

	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/models"
)

// UnreadEvent says that the caller's unread state in a channel may have
// changed. It carries the channel only: its counts and the caller's
// summary are read when the event is delivered (UnreadCount,
// UnreadMentionsCount and UnreadSummary with the delivery's loaders), so
// an event that waited in a coalescing window has the newest counts.
type UnreadEvent struct {
	Channel *models.Channel
}

// unreadUpdate is an unreadChanged event that may wait for the end of
// its channel's window: the newest channel state seen.
type unreadUpdate struct{ ch *models.Channel }

func (u *unreadUpdate) merge(later *unreadUpdate) *unreadUpdate {
	if later.ch.NextMessageIndex >= u.ch.NextMessageIndex {
		u.ch = later.ch
	}
	return u
}

func (u *unreadUpdate) value() any { return &UnreadEvent{Channel: u.ch} }

// UnreadChanged streams a change of the caller's unread state in one of
// the channels they joined (within their token's grants): a message that
// counts arrives (not their own, not a system message), a message they
// had not read is deleted, their read horizon moves (markRead,
// setReadHorizon, markAllRead, on any node, and their own message when it
// read messages that were unread), or they join, are added to, leave or
// are removed from a channel, or it is deleted (the last event of that
// channel, with its counts at 0). Events are coalesced per channel as
// channelEvents' LAST_MESSAGE are (see ChannelUpdateWindow), but for a
// departure, which is delivered at once. Errors are UNAUTHENTICATED
// without a caller, INTERNAL when the hub is missing or the caller's
// channels cannot be read.
func (s *Service) UnreadChanged(ctx context.Context, emit func(*UnreadEvent)) error {
	v, err := s.viewer(ctx)
	if err != nil {
		return err
	}
	topics, _, err := s.myTopics(ctx, v, false)
	if err != nil {
		return err
	}
	f := &unreadFeed{v: v, updates: newCoalescer[*unreadUpdate](s.clock()), behind: map[string]bool{}}
	return s.register(ctx, hub.Spec{
		Topics: topics,
		Emit:   func(x any) { emit(x.(*UnreadEvent)) },
		// Live events wait until the channels behind are known, and
		// are applied after: those that happened before only add
		// channels that may have unread messages.
		Start: func(ctx context.Context, _ func(any) error) error {
			behind, err := s.channelsBehind(ctx, v)
			if err != nil {
				return internal("subscribe to unread changes", err)
			}
			f.behind = behind
			return nil
		},
		Pick: func(_ string, e any) hub.Verdict {
			switch ev := e.(type) {
			case hub.Tick:
				return f.updates.tick(ev)
			case *event:
				return f.pick(ev)
			}
			return hub.Verdict{}
		},
	})
}

// unreadFeed is one unreadChanged subscription's state. behind holds
// the channels where the caller may have unread messages: their horizon
// is before the newest message (system messages and their own after it
// do not count, so not all of them have). It is what tells whether their
// own message read anything, and whether a deleted message was unread.
// The hub calls pick one event at a time.
type unreadFeed struct {
	v       viewer
	updates *coalescer[*unreadUpdate]
	behind  map[string]bool
}

// pick is what ev means for the subscription.
func (f *unreadFeed) pick(ev *event) hub.Verdict {
	ch := ev.Channel
	if ev.Message != nil && ev.Message.Channel != nil {
		ch = ev.Message.Channel
	}
	// An event without its channel is a message read back from the
	// database (its live one follows) or one from a node that predates
	// the channel in deletions.
	if ch == nil || !f.v.sees(ch) {
		return hub.Verdict{}
	}
	update := func() hub.Verdict { return f.updates.update(ch.ID, &unreadUpdate{ch: ch}) }
	switch ev.Kind {
	case evMessageAdded:
		m := ev.Message
		switch {
		case m == nil || m.Type() == models.MessageSystem:
		case m.AuthorID != nil && *m.AuthorID == f.v.UserID:
			// Sending reads the channel up to the message sent.
			if f.behind[ch.ID] {
				delete(f.behind, ch.ID)
				return update()
			}
		default:
			f.behind[ch.ID] = true
			return update()
		}
	case evMessageRemoved:
		if f.behind[ch.ID] && countsAsUnread(f.v, ev.Message) {
			return update()
		}
	case evMemberUpdated:
		if m := ev.Member; m != nil && m.UserID == f.v.UserID && slices.Contains(ev.Reasons, ReasonLastRead) {
			if behind(m, ch) {
				f.behind[ch.ID] = true
			} else {
				delete(f.behind, ch.ID)
			}
			return update()
		}
	case evMyChannel:
		switch ev.ChannelEvent {
		case ChannelAdded, ChannelJoined:
			f.behind[ch.ID] = true
			verdict := update()
			verdict.Follow = []string{channelTopic(ch.ID)}
			return verdict
		case ChannelLeft, ChannelRemoved:
			return f.last(ch)
		}
	case evChannelRemoved:
		return f.last(ch)
	}
	return hub.Verdict{}
}

// last is the verdict of the caller's departure from ch, or of its
// deletion: one event at once, and no more from ch.
func (f *unreadFeed) last(ch *models.Channel) hub.Verdict {
	f.updates.forget(ch.ID)
	delete(f.behind, ch.ID)
	return hub.Verdict{Value: &UnreadEvent{Channel: ch}, Deliver: true, Unfollow: []string{channelTopic(ch.ID)}}
}

// countsAsUnread reports whether m is a message that counts as unread
// for v: not a system message, not v's own.
func countsAsUnread(v viewer, m *models.Message) bool {
	return m != nil && m.Type() != models.MessageSystem && (m.AuthorID == nil || *m.AuthorID != v.UserID)
}

// behindSQL holds for a joined membership m of channel c whose read
// horizon is before the newest message of c that m may see.
const behindSQL = `c.next_message_index > COALESCE(m.last_read_index, -1) + 1 AND c.next_message_index > m.history_start`

// behind is behindSQL for a membership and its channel at hand.
func behind(m *models.Member, ch *models.Channel) bool {
	last := -1
	if m.LastReadIndex != nil {
		last = *m.LastReadIndex
	}
	return ch.NextMessageIndex > last+1 && ch.NextMessageIndex > m.HistoryStart
}

// channelsBehind returns the channels v joined whose read horizon is
// before their newest message, in one query.
func (s *Service) channelsBehind(ctx context.Context, v viewer) (map[string]bool, error) {
	var ids []string
	err := s.store.DB(ctx).Table("members AS m").Joins("JOIN channels AS c ON c.id = m.channel_id").
		Where("m.user_id = ? AND m.status = ? AND "+behindSQL, v.UserID, models.MemberJoined).
		Pluck("m.channel_id", &ids).Error
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
