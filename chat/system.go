package chat

import (
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/models"
)

// systemMessage writes through tx, in the transaction of the change it
// reports, a SYSTEM message with the channel's next index (the channel's
// row is locked by the UPDATE that takes it, as a send takes one), and adds
// its messageAdded event to out. A system message has no author, counts
// among messagesCount and becomes the channel's last message, but never
// counts as unread, queues no push and has no webhook (the change has its
// own). It does nothing when the service writes no system messages
// (Options.SystemMessages).
func (s *Service) systemMessage(tx *gorm.DB, out *outbox, channelID string, ev models.SystemEvent) error {
	_, err := s.systemMessageChannel(tx, out, channelID, ev)
	return err
}

// systemMessageChannel is systemMessage, returning the channel's row as
// the message left it (nil when no message was written).
func (s *Service) systemMessageChannel(tx *gorm.DB, out *outbox, channelID string, ev models.SystemEvent) (*models.Channel, error) {
	if !s.systemMessages {
		return nil, nil
	}
	msg := &models.Message{
		ID: newID(), ChannelID: channelID, StoredType: models.MessageSystem, StoredOrigin: models.OriginSystem,
		StoredPriority: models.PriorityNormal, System: &ev, CreatedAt: now(),
	}
	var rows []*models.Channel
	err := tx.Model(&rows).Clauses(clause.Returning{}).Where("id = ?", channelID).UpdateColumns(map[string]any{
		"next_message_index": gorm.Expr("next_message_index + 1"),
		"messages_count":     gorm.Expr("messages_count + 1"),
		"last_message_id":    msg.ID,
		"last_activity_us":   msg.CreatedAt.UnixMicro(),
	}).Error
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("system message: channel %s is gone", channelID)
	}
	msg.Channel = rows[0]
	msg.Index, msg.Ordinal = msg.Channel.NextMessageIndex-1, msg.Channel.CountedMessages
	if err := tx.Create(msg).Error; err != nil {
		return nil, err
	}
	out.add(channelTopic(channelID), &event{Kind: evMessageAdded, Message: msg})
	return msg.Channel, nil
}

// memberEvent is the system event of a membership change by actor about
// users.
func memberEvent(kind models.SystemEventKind, actor string, users ...string) models.SystemEvent {
	return models.SystemEvent{Kind: kind, ActorID: &actor, UserIDs: users}
}

// isSystem reports whether ev is about a SYSTEM message.
func isSystem(ev *event) bool {
	return ev.Message != nil && ev.Message.Type() == models.MessageSystem
}
