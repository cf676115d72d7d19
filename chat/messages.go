package chat

import (
	"context"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// NewMessage is the input of SendMessage.
type NewMessage struct {
	ChannelID  string
	Body       string
	Attributes models.JSON
	// Media are the IDs of stored uploads of the caller's, made for this
	// channel, to attach in this order.
	Media []string
}

// SendMessage stores a message with the channel's next index and returns it.
// Members only. In one transaction it takes the index (the channel row's
// counter, so concurrent senders queue on that row and indexes have no gaps
// or duplicates), inserts the message and moves the author's read horizon to
// it: a user's own messages are never unread. Concurrent sends share
// transactions (see sendBatcher). Media attaches uploads (see CreateUpload)
// in that transaction: BAD_USER_INPUT for more than MaxMediaPerMessage, an
// upload listed twice, not yet uploaded, made for another channel or
// already attached; NOT_FOUND for one that is not the caller's.
func (s *Service) SendMessage(ctx context.Context, in NewMessage) (*models.Message, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkBody(in.Body); err != nil {
		return nil, err
	}
	if err := s.checkAttributes(in.Attributes); err != nil {
		return nil, err
	}
	if err := s.checkMediaList(in.Media); err != nil {
		return nil, err
	}
	msg := &models.Message{ID: newID(), ChannelID: in.ChannelID, AuthorID: &v.UserID, Body: in.Body, Attributes: in.Attributes, CreatedAt: now()}
	if err := s.preSend(ctx, v, msg); err != nil {
		return nil, err
	}
	if err := s.sends.send(ctx, s, v, msg, in.Media); err != nil {
		return nil, internal("send message", err)
	}
	return msg, nil
}

// EditMessage replaces a message's body, and its attributes when given.
// The author only, while a member; a deleted message cannot be edited.
func (s *Service) EditMessage(ctx context.Context, id, body string, attributes models.JSON) (*models.Message, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkBody(body); err != nil {
		return nil, err
	}
	if err := s.checkAttributes(attributes); err != nil {
		return nil, err
	}
	// out is reloaded fresh: GORM leaves a field as it was when it reads NULL.
	var (
		msg, edited models.Message
		out         outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadMessageAccess(tx, v, id, &msg)
		if err != nil {
			return err
		}
		if msg.AuthorID == nil || *msg.AuthorID != v.UserID {
			return apperr.New(apperr.Forbidden, "only the author may edit a message")
		}
		if err := a.requireWrite(); err != nil {
			return err
		}
		if msg.DeletedAt != nil {
			return apperr.New(apperr.BadUserInput, "a deleted message cannot be edited")
		}
		changes := map[string]any{"body": body, "edited_at": now()}
		if attributes != nil {
			changes["attributes"] = attributes
		}
		if err := tx.Model(&msg).UpdateColumns(changes).Error; err != nil {
			return err
		}
		if err := tx.Take(&edited, "id = ?", id).Error; err != nil {
			return err
		}
		out.add(channelTopic(edited.ChannelID), &event{Kind: evMessageUpdated, Message: &edited})
		return nil
	})
	if err != nil {
		return nil, internal("edit message", err)
	}
	s.flush(ctx, out)
	return &edited, nil
}

// DeleteMessage empties a message and marks it deleted; it keeps its index.
// Its media go with it: their URLs stop working at once, their bytes are
// removed right after (or by the next SweepMedia).
// The author, an ADMIN or the OWNER. Deleting twice returns the tombstone
// and counts once, also when two deletes race.
func (s *Service) DeleteMessage(ctx context.Context, id string) (*models.Message, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	// out is reloaded fresh: GORM leaves a field as it was when it reads NULL.
	var (
		msg, tomb models.Message
		out       outbox
		hadMedia  bool
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadMessageAccess(tx, v, id, &msg)
		if err != nil {
			return err
		}
		isAuthor := msg.AuthorID != nil && *msg.AuthorID == v.UserID
		if !isAuthor && !a.isModerator() {
			return apperr.New(apperr.Forbidden, "only the author, an ADMIN or the OWNER may delete a message")
		}
		res := tx.Model(&models.Message{}).Where("id = ? AND deleted_at IS NULL", id).
			UpdateColumns(map[string]any{"body": "", "attributes": nil, "deleted_at": now()})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 {
			err = tx.Model(&models.Channel{}).Where("id = ?", msg.ChannelID).
				UpdateColumn("messages_count", gorm.Expr("messages_count - 1")).Error
			if err != nil {
				return err
			}
			if hadMedia, err = markMediaDeleted(tx, "message_id = ?", id); err != nil {
				return err
			}
		}
		if err := tx.Take(&tomb, "id = ?", id).Error; err != nil {
			return err
		}
		if res.RowsAffected == 1 {
			out.add(channelTopic(tomb.ChannelID), &event{Kind: evMessageRemoved, Message: &tomb})
		}
		return nil
	})
	if err != nil {
		return nil, internal("delete message", err)
	}
	s.flush(ctx, out)
	if hadMedia {
		s.purgeDeletedMedia(ctx, "message_id = ?", id)
	}
	return &tomb, nil
}

// loadMessageAccess loads a message into msg and the caller's access to its
// channel. NOT_FOUND unless the caller is a joined member of that channel
// who may see the message: messages are visible to members only, and not
// those before a member's shared history.
func loadMessageAccess(tx *gorm.DB, v viewer, id string, msg *models.Message) (*access, error) {
	err := tx.Take(msg, "id = ?", id).Error
	if isNotFound(err) {
		return nil, apperr.New(apperr.NotFound, "message not found")
	}
	if err != nil {
		return nil, err
	}
	a, err := loadAccess(tx, v, msg.ChannelID)
	if err != nil {
		return nil, err
	}
	if a.requireMember() != nil || msg.Index < a.historyStart() {
		return nil, apperr.New(apperr.NotFound, "message not found")
	}
	return a, nil
}

// Messages lists a channel's messages by index, newest last. Members only,
// and from the member's shared history on (see Member.HistoryStart).
// Without first or last it returns the latest page.
func (s *Service) Messages(ctx context.Context, channelID string, args PageArgs) (*Page[*models.Message], error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	n, backward, err := s.pageSize(args, true)
	if err != nil {
		return nil, err
	}
	after, err := decodeCursor(args.After, "msg")
	if err != nil {
		return nil, err
	}
	before, err := decodeCursor(args.Before, "msg")
	if err != nil {
		return nil, err
	}
	q := s.store.DB(ctx)
	a, err := loadAccess(q, v, channelID)
	if err != nil {
		return nil, internal("list messages", err)
	}
	if err := a.requireMember(); err != nil {
		return nil, err
	}
	q = q.Where("channel_id = ? AND idx >= ?", channelID, a.historyStart())
	if after != nil {
		q = q.Where("idx > ?", after.N)
	}
	if before != nil {
		q = q.Where("idx < ?", before.N)
	}
	order := "idx"
	if backward {
		order = "idx DESC"
	}
	var rows []*models.Message
	if err := q.Order(order).Limit(n).Find(&rows).Error; err != nil {
		return nil, internal("list messages", err)
	}
	if backward {
		for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
			rows[i], rows[j] = rows[j], rows[i]
		}
	}
	return messagePage(rows, a.historyStart(), a.ch.NextMessageIndex, after, before), nil
}

// messagePage builds a page of messages. The indexes a member sees run from
// start to next-1 with no gaps, so whether more pages exist follows from
// the first and last index.
func messagePage(rows []*models.Message, start, next int, after, before *cursor) *Page[*models.Message] {
	page := &Page[*models.Message]{Items: rows}
	if len(rows) == 0 {
		page.HasPrevious = after != nil && after.N >= int64(start) && next > start
		page.HasNext = before != nil && before.N < int64(next)
		return page
	}
	page.HasPrevious = rows[0].Index > start
	page.HasNext = rows[len(rows)-1].Index < next-1
	for _, m := range rows {
		page.Cursors = append(page.Cursors, encodeCursor(cursor{Kind: "msg", N: int64(m.Index)}))
	}
	return page
}

// messagesByIDs loads messages for a loader, without rules: see LastMessage.
func (s *Service) messagesByIDs(ctx context.Context, ids []string) ([]*models.Message, []error) {
	var rows []*models.Message
	if err := s.store.DB(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, []error{internal("load messages", err)}
	}
	return byID(ids, rows, func(m *models.Message) string { return m.ID }), nil
}
