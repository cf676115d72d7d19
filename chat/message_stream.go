package chat

import (
	"context"
	"errors"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/models"
)

// MessageAdded streams new messages of one channel (members only), or of
// every channel the caller is a member of when channelID is nil, following
// joins and leaves live.
//
// Every message is delivered once, in index order per channel. The hub
// follows the channel before history is read, so nothing falls between
// the two; it orders each channel's messages once per node and fills a
// gap (a message lost between nodes) with one query per node, and this
// subscription drops what it has delivered already.
//
// With afterIndex (channelId required), stored messages with a greater
// index come first.
//
// channelIDs, when not nil, lists the channels instead (at most MaxBatch,
// each one the caller's, checked as channelId is; BAD_USER_INPUT with
// channelId or afterIndex too).
func (s *Service) MessageAdded(ctx context.Context, channelID *string, channelIDs []string, afterIndex *int, emit func(*models.Message)) error {
	if channelIDs != nil {
		switch {
		case channelID != nil:
			return apperr.New(apperr.BadUserInput, "give channelId or channelIds, not both")
		case afterIndex != nil:
			return apperr.New(apperr.BadUserInput, "afterIndex needs channelId")
		}
		return s.messagesAddedIn(ctx, channelIDs, emit)
	}
	if channelID == nil {
		if afterIndex != nil {
			return apperr.New(apperr.BadUserInput, "afterIndex needs channelId")
		}
		return s.allMessagesAdded(ctx, emit)
	}
	if afterIndex != nil && *afterIndex < -1 {
		return apperr.New(apperr.BadUserInput, "afterIndex must be -1 or more")
	}
	v, a, err := s.authorizeChannel(ctx, *channelID)
	if err != nil {
		return err
	}
	seq := newMessageSequencer()
	id := *channelID
	historyStart := a.historyStart() // not a: the subscription keeps what it captures
	return s.register(ctx, hub.Spec{
		Topics: []string{channelTopic(id)},
		Emit:   func(x any) { emit(x.(*models.Message)) },
		Fill:   s.fillMessages,
		Start: func(ctx context.Context, out func(any) error) error {
			if afterIndex == nil {
				return s.startAtHead(ctx, seq, id)
			}
			// Never before the member's shared history.
			seq.set(id, max(*afterIndex, historyStart-1))
			return s.replay(ctx, seq, id, out)
		},
		Pick: func(_ string, e any) hub.Verdict {
			ev, ok := e.(*event)
			if !ok {
				return hub.Verdict{}
			}
			verdict := hub.Verdict{End: channelGuard(v, ev)}
			if ev.Kind == evMessageAdded {
				verdict.Value, verdict.Deliver = seq.admit(ev.Message)
			}
			return verdict
		},
	})
}

func (s *Service) allMessagesAdded(ctx context.Context, emit func(*models.Message)) error {
	v, err := s.viewer(ctx)
	if err != nil {
		return err
	}
	topics, ids, err := s.myTopics(ctx, v, false)
	if err != nil {
		return err
	}
	return s.register(ctx, s.headsSpec(topics, ids, emit, func(seq *messageSequencer, ev *event) hub.Verdict {
		switch ev.Kind {
		case evMyChannel:
			if !v.sees(ev.Channel) || ev.ChannelEvent == ChannelInvited {
				return hub.Verdict{}
			}
			follow, unfollow := follows(ev)
			verdict := hub.Verdict{Follow: follow, Unfollow: unfollow}
			switch ev.ChannelEvent {
			case ChannelAdded, ChannelJoined:
				// Messages sent between the join and the follow are
				// read back from the database.
				seq.set(ev.Channel.ID, ev.Channel.NextMessageIndex-1)
				verdict.CatchUp = &hub.CatchUp{Topic: channelTopic(ev.Channel.ID), Stream: ev.Channel.ID, After: ev.Channel.NextMessageIndex - 1}
			case ChannelLeft, ChannelRemoved:
				delete(seq.last, ev.Channel.ID)
			}
			return verdict
		case evChannelRemoved:
			delete(seq.last, ev.Channel.ID)
			return hub.Verdict{Unfollow: []string{channelTopic(ev.Channel.ID)}}
		}
		return hub.Verdict{}
	}))
}

// headsSpec follows topics and delivers the new messages of the channels
// it follows, each from its head (channels ids at the start, those pick
// adds to seq later); pick decides what every other event means.
func (s *Service) headsSpec(topics, ids []string, emit func(*models.Message), pick func(seq *messageSequencer, ev *event) hub.Verdict) hub.Spec {
	seq := newMessageSequencer()
	return hub.Spec{
		Topics: topics,
		Emit:   func(x any) { emit(x.(*models.Message)) },
		Fill:   s.fillMessages,
		Start: func(ctx context.Context, _ func(any) error) error {
			return s.startAtHeads(ctx, seq, ids)
		},
		Pick: func(_ string, e any) hub.Verdict {
			ev, ok := e.(*event)
			switch {
			case !ok:
				return hub.Verdict{}
			case ev.Kind == evMessageAdded:
				value, deliver := seq.admit(ev.Message)
				return hub.Verdict{Value: value, Deliver: deliver}
			}
			return pick(seq, ev)
		},
	}
}

// messagesAddedIn streams new messages of the listed channels, each one
// the caller's. The caller leaving one of them, or its deletion, drops it
// from the subscription; the subscription ends, as one to a single channel
// does, when none is left.
func (s *Service) messagesAddedIn(ctx context.Context, channelIDs []string, emit func(*models.Message)) error {
	ids, err := batchIDs("channelIds", "channels", channelIDs)
	if err != nil {
		return err
	}
	v, err := s.viewer(ctx)
	if err != nil {
		return err
	}
	if err := s.authorizeChannels(ctx, v, ids); err != nil {
		return err
	}
	topics := make([]string, len(ids))
	for i, id := range ids {
		topics[i] = channelTopic(id)
	}
	return s.register(ctx, s.headsSpec(topics, ids, emit, func(seq *messageSequencer, ev *event) hub.Verdict {
		end := channelGuard(v, ev)
		if end == nil {
			return hub.Verdict{}
		}
		var id string
		if ev.Kind == evChannelRemoved {
			id = ev.Channel.ID
		} else {
			id = ev.Member.ChannelID
		}
		delete(seq.last, id)
		if len(seq.last) > 0 {
			end = nil
		}
		return hub.Verdict{Unfollow: []string{channelTopic(id)}, End: end}
	}))
}

// batchIDs checks a list argument of 1 to MaxBatch entries (what names
// them, for the message) and drops repeats. BAD_USER_INPUT otherwise.
func batchIDs(arg, what string, ids []string) ([]string, error) {
	switch {
	case len(ids) == 0:
		return nil, apperr.New(apperr.BadUserInput, "%s must list at least one of your %s", arg, what)
	case len(ids) > MaxBatch:
		return nil, apperr.New(apperr.BadUserInput, "%s lists %d %s; the limit is %d", arg, len(ids), what, MaxBatch)
	}
	return compactUnique(ids), nil
}

// authorizeChannels checks, with one query for the channels and one for
// the caller's memberships, that the caller may follow each channel's
// events, as authorizeChannel does for one: the first refused one's error,
// naming it.
func (s *Service) authorizeChannels(ctx context.Context, v viewer, ids []string) error {
	q := s.store.DB(ctx)
	var channels []*models.Channel
	if err := q.Where("id IN ?", ids).Find(&channels).Error; err != nil {
		return internal("subscribe", err)
	}
	var mine []*models.Member
	if err := q.Where("user_id = ? AND channel_id IN ?", v.UserID, ids).Find(&mine).Error; err != nil {
		return internal("subscribe", err)
	}
	channelOf := byID(ids, channels, func(c *models.Channel) string { return c.ID })
	memberOf := byID(ids, mine, func(m *models.Member) string { return m.ChannelID })
	for i, id := range ids {
		if channelOf[i] == nil {
			return apperr.New(apperr.NotFound, "channel %q not found", id)
		}
		a, err := accessTo(v, channelOf[i], memberOf[i])
		if err == nil {
			err = a.requireMember()
		}
		if ae, ok := errors.AsType[*apperr.Error](err); ok {
			return apperr.New(ae.Code, "channel %q: %s", id, ae.Message)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// messageSequencer is one subscription's last delivered index per followed
// channel. The hub calls its subscription's Start and Pick one at a time.
//
// The indexes are held by pointer, so that admit, which runs for every
// subscriber of every message, looks its channel up once (at 300,000
// deliveries/s a second lookup was about 4 % of the server's CPU).
type messageSequencer struct {
	last map[string]*int
}

// newMessageSequencer returns a sequencer that follows no channel yet.
func newMessageSequencer() *messageSequencer {
	return &messageSequencer{last: map[string]*int{}}
}

// set records index as the last delivered of channelID, and follows it.
func (q *messageSequencer) set(channelID string, index int) {
	if p := q.last[channelID]; p != nil {
		*p = index
		return
	}
	q.last[channelID] = &index
}

// at is the last delivered index of channelID, 0 when it is not followed.
func (q *messageSequencer) at(channelID string) int {
	if p := q.last[channelID]; p != nil {
		return *p
	}
	return 0
}

// admit returns m when its channel is followed and m comes after the last
// message delivered of it, and records it.
func (q *messageSequencer) admit(m *models.Message) (*models.Message, bool) {
	if m == nil {
		return nil, false
	}
	p := q.last[m.ChannelID]
	if p == nil || m.Index <= *p {
		return nil, false
	}
	*p = m.Index
	return m, true
}

// startAtHead follows a channel from its newest message on.
func (s *Service) startAtHead(ctx context.Context, q *messageSequencer, channelID string) error {
	var ch models.Channel
	if err := s.store.DB(ctx).Select("next_message_index").Take(&ch, "id = ?", channelID).Error; err != nil {
		if isNotFound(err) {
			return apperr.New(apperr.NotFound, "the channel was deleted")
		}
		return internal("read channel head", err)
	}
	q.set(channelID, ch.NextMessageIndex-1)
	return nil
}

// startAtHeads follows channels from their newest messages on, with one
// query; a channel deleted meanwhile is NOT_FOUND.
func (s *Service) startAtHeads(ctx context.Context, q *messageSequencer, channelIDs []string) error {
	if len(channelIDs) == 0 {
		return nil
	}
	var heads []*models.Channel
	if err := s.store.DB(ctx).Select("id", "next_message_index").Where("id IN ?", channelIDs).Find(&heads).Error; err != nil {
		return internal("read channel heads", err)
	}
	if len(heads) < len(channelIDs) {
		return apperr.New(apperr.NotFound, "the channel was deleted")
	}
	for _, ch := range heads {
		q.set(ch.ID, ch.NextMessageIndex-1)
	}
	return nil
}

// replay emits every stored message after the last delivered index, in
// batches.
func (s *Service) replay(ctx context.Context, q *messageSequencer, channelID string, out func(any) error) error {
	for {
		rows, err := s.messagesBetween(ctx, channelID, q.at(channelID), -1)
		if err != nil {
			return err
		}
		for _, m := range rows {
			if err := out(m); err != nil {
				return err
			}
			q.set(channelID, m.Index)
		}
		if len(rows) < replayBatch {
			return nil
		}
	}
}

// fillMessages reads the message.added events of a channel with index
// after < i < before (no upper bound when before < 0), for the hub: the
// events a node missed.
func (s *Service) fillMessages(ctx context.Context, channelID string, after, before int) ([]any, error) {
	var out []any
	for {
		rows, err := s.messagesBetween(ctx, channelID, after, before)
		if err != nil {
			return out, err
		}
		for _, m := range rows {
			out = append(out, &event{ID: "fill:" + m.ID, Kind: evMessageAdded, Message: m})
			after = m.Index
		}
		if len(rows) < replayBatch {
			return out, nil
		}
	}
}

// messagesBetween reads up to replayBatch stored messages of a channel
// with index after < i < before (no upper bound when before < 0).
func (s *Service) messagesBetween(ctx context.Context, channelID string, after, before int) ([]*models.Message, error) {
	query := s.store.DB(ctx).Where("channel_id = ? AND idx > ?", channelID, after)
	if before >= 0 {
		query = query.Where("idx < ?", before)
	}
	var rows []*models.Message
	if err := query.Order("idx").Limit(replayBatch).Find(&rows).Error; err != nil {
		return nil, internal("replay messages", err)
	}
	return rows, nil
}
