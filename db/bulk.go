package db

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/parleychat/parley/models"
)

// ImportMessages stores msgs, messages of one channel with the consecutive
// indexes that follow its last message, in INSERTs of batch rows, and moves
// the channel's counters past the last of them and recounts its members'
// unread messages (see RecountUnread), all in one transaction through
// Write. It is the bulk path for loading history (the load tool
// fills a channel with a million messages through it) and checks no rule:
// the caller owns the indexes it gives.
func (s *Store) ImportMessages(ctx context.Context, channelID string, msgs []*models.Message, batch int) error {
	return s.ImportMessagesWithMentions(ctx, channelID, msgs, nil, batch)
}

// ImportMessagesWithMentions is ImportMessages that also stores mentions,
// rows of message_mentions for msgs, in the same transaction: the load
// tool's filtered history mentions its reader in some messages.
func (s *Store) ImportMessagesWithMentions(ctx context.Context, channelID string, msgs []*models.Message, mentions []*models.MessageMention, batch int) error {
	if len(msgs) == 0 {
		return nil
	}
	return s.Write(ctx, func(tx *gorm.DB) error {
		return importTx(tx, channelID, msgs, mentions, batch)
	})
}

// ImportMessagesTx is ImportMessages in tx, a transaction of Write, for a
// caller that takes the indexes in the same transaction. The messages
// count as sent ones (Channel.CountedMessages); their ordinals are the
// caller's too.
func ImportMessagesTx(tx *gorm.DB, channelID string, msgs []*models.Message, batch int) error {
	return importTx(tx, channelID, msgs, nil, batch)
}

// importTx stores msgs and their mentions through tx, moves the channel's
// counters and recounts its members' unread messages.
func importTx(tx *gorm.DB, channelID string, msgs []*models.Message, mentions []*models.MessageMention, batch int) error {
	if len(msgs) == 0 {
		return nil
	}
	last := msgs[len(msgs)-1]
	if err := tx.CreateInBatches(msgs, batch).Error; err != nil {
		return err
	}
	if len(mentions) > 0 {
		if err := tx.CreateInBatches(mentions, batch).Error; err != nil {
			return err
		}
	}
	res := tx.Model(&models.Channel{}).Where("id = ?", channelID).UpdateColumns(map[string]any{
		"next_message_index": last.Index + 1,
		"messages_count":     gorm.Expr("messages_count + ?", len(msgs)),
		"counted_messages":   gorm.Expr("counted_messages + ?", counted(msgs)),
		"last_message_id":    last.ID,
		"last_activity_us":   last.CreatedAt.UnixMicro(),
	})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return errors.New("import messages: no channel " + channelID)
	}
	return RecountChannelsUnread(tx, []string{channelID})
}

// counted is the number of msgs that are not SYSTEM.
func counted(msgs []*models.Message) int {
	n := 0
	for _, m := range msgs {
		if m.Type() != models.MessageSystem {
			n++
		}
	}
	return n
}
