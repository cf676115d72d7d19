package chat

import (
	"context"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// replayBatch is how many stored messages one replay query reads.
const replayBatch = 100

// MessageAdded streams new messages of one channel (members only), or of
// every channel the caller is a member of when channelID is nil, following
// joins and leaves live.
//
// Every message is delivered once, in index order per channel. The stream
// subscribes before it reads history, so nothing falls between the two.
// Live events can arrive out of index order (two senders publish after
// their commits, in either order), but a message is committed only after
// every lower index of its channel is (they queue on the channel row), so a
// gap is filled from the database and late duplicates are dropped.
//
// With afterIndex (channelId required), stored messages with a greater
// index come first.
func (s *Service) MessageAdded(ctx context.Context, channelID *string, afterIndex *int) (*Stream[*models.Message], error) {
	if channelID == nil {
		if afterIndex != nil {
			return nil, apperr.New(apperr.BadUserInput, "afterIndex needs channelId")
		}
		return s.allMessagesAdded(ctx)
	}
	if afterIndex != nil && *afterIndex < -1 {
		return nil, apperr.New(apperr.BadUserInput, "afterIndex must be -1 or more")
	}
	v, a, sub, err := s.subscribeChannel(ctx, *channelID)
	if err != nil {
		return nil, err
	}
	seq := &messageSequencer{s: s, ctx: ctx, last: map[string]int{}}
	prelude := func(emit emitter[*models.Message]) error {
		if afterIndex != nil {
			// Never before the member's shared history.
			seq.last[*channelID] = max(*afterIndex, a.me.HistoryStart-1)
			return seq.catchUp(*channelID, emit)
		}
		return seq.startAtHead(*channelID)
	}
	return runStream(ctx, s, sub, prelude, func(_ string, ev *event, emit emitter[*models.Message]) error {
		if ev.Kind == evMessageAdded {
			if err := seq.deliver(ev.Message, emit); err != nil {
				return err
			}
		}
		return channelGuard(v, ev)
	}), nil
}

func (s *Service) allMessagesAdded(ctx context.Context) (*Stream[*models.Message], error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	sub, ids, err := s.subscribeMine(ctx, v, false)
	if err != nil {
		return nil, err
	}
	seq := &messageSequencer{s: s, ctx: ctx, last: map[string]int{}}
	prelude := func(emitter[*models.Message]) error {
		for _, id := range ids {
			if err := seq.startAtHead(id); err != nil {
				return err
			}
		}
		return nil
	}
	return runStream(ctx, s, sub, prelude, func(_ string, ev *event, emit emitter[*models.Message]) error {
		switch ev.Kind {
		case evMessageAdded:
			if _, following := seq.last[ev.Message.ChannelID]; following {
				return seq.deliver(ev.Message, emit)
			}
		case evMyChannel:
			if !v.sees(ev.Channel) || ev.ChannelEvent == ChannelInvited {
				return nil
			}
			if err := followChannel(ctx, sub, ev); err != nil {
				return err
			}
			switch ev.ChannelEvent {
			case ChannelAdded, ChannelJoined:
				// Messages sent between the join and the topic's
				// subscription are read back from the database.
				seq.last[ev.Channel.ID] = ev.Channel.NextMessageIndex - 1
				return seq.catchUp(ev.Channel.ID, emit)
			case ChannelLeft, ChannelRemoved:
				delete(seq.last, ev.Channel.ID)
			}
		case evChannelRemoved:
			delete(seq.last, ev.Channel.ID)
			return internal("unfollow channel", sub.Remove(ctx, channelTopic(ev.Channel.ID)))
		}
		return nil
	}), nil
}

// messageSequencer delivers each channel's messages once and in index
// order. It belongs to one stream's goroutine.
type messageSequencer struct {
	s   *Service
	ctx context.Context
	// last is the last index delivered per followed channel.
	last map[string]int
}

// startAtHead follows a channel from its newest message on.
func (q *messageSequencer) startAtHead(channelID string) error {
	var ch models.Channel
	if err := q.s.store.DB(q.ctx).Select("next_message_index").Take(&ch, "id = ?", channelID).Error; err != nil {
		if isNotFound(err) {
			return apperr.New(apperr.NotFound, "the channel was deleted")
		}
		return internal("read channel head", err)
	}
	q.last[channelID] = ch.NextMessageIndex - 1
	return nil
}

// deliver emits m after any stored messages between the last delivered
// index and m's, and drops m if it was delivered already.
func (q *messageSequencer) deliver(m *models.Message, emit emitter[*models.Message]) error {
	last := q.last[m.ChannelID]
	if m.Index <= last {
		return nil
	}
	if m.Index > last+1 {
		if err := q.fill(m.ChannelID, m.Index, emit); err != nil {
			return err
		}
	}
	if !emit(m) {
		return errStreamDone
	}
	q.last[m.ChannelID] = m.Index
	return nil
}

// catchUp emits every stored message after the last delivered index.
func (q *messageSequencer) catchUp(channelID string, emit emitter[*models.Message]) error {
	return q.fill(channelID, -1, emit)
}

// fill emits stored messages after the last delivered index and before
// until (no upper bound when until < 0), in batches.
func (q *messageSequencer) fill(channelID string, until int, emit emitter[*models.Message]) error {
	for {
		query := q.s.store.DB(q.ctx).Where("channel_id = ? AND idx > ?", channelID, q.last[channelID])
		if until >= 0 {
			query = query.Where("idx < ?", until)
		}
		var rows []*models.Message
		if err := query.Order("idx").Limit(replayBatch).Find(&rows).Error; err != nil {
			return internal("replay messages", err)
		}
		for _, m := range rows {
			if !emit(m) {
				return errStreamDone
			}
			q.last[channelID] = m.Index
		}
		if len(rows) < replayBatch {
			return nil
		}
	}
}
