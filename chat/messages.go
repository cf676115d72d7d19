package chat

import (
	"context"
	"slices"
	"strings"

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
	// Location, when not nil, makes a LOCATION message.
	Location *models.Location
	// ClientMessageID, when not nil, makes the send idempotent: see
	// SendMessage.
	ClientMessageID *string
	// Mentions are identities of the channel's joined members.
	Mentions []string
	// Priority is NORMAL when empty.
	Priority models.MessagePriority
	// SenderDisplayName, when nil, is the member's display name, else the
	// user's friendly name.
	SenderDisplayName *string
}

// MaxMentions caps the mentions of one message.
const MaxMentions = 25

// maxClientMessageIDBytes caps a clientMessageId.
const maxClientMessageIDBytes = 128

// SendMessage stores a message with the channel's next index and returns it.
// Members only. In one transaction it takes the index (the channel row's
// counter, so concurrent senders queue on that row and indexes have no gaps
// or duplicates), inserts the message and its mentions and moves the
// author's read horizon to it: a user's own messages are never unread.
// Concurrent sends share transactions (see sendBatcher). Media attaches
// uploads (see CreateUpload) in that transaction: BAD_USER_INPUT for more
// than MaxMediaPerMessage, an upload listed twice, not yet uploaded, made
// for another channel or already attached; NOT_FOUND for one that is not
// the caller's.
//
// A message with a ClientMessageID that the author already sent to the
// channel is not written again: the stored message comes back and nothing
// is published, also when the two sends race (on PostgreSQL the second
// waits for the channel's row lock and then finds the first).
// BAD_USER_INPUT for content that checkContent refuses, a location out of
// range, more than MaxMentions mentions or one that is not a joined member,
// an empty or too long clientMessageId or senderDisplayName.
func (s *Service) SendMessage(ctx context.Context, in NewMessage) (*models.Message, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	msg, err := s.newMessage(v, in)
	if err != nil {
		return nil, err
	}
	if s.presend != nil && msg.ClientMessageID != nil {
		// A retry is answered before the hook is asked again.
		if old, err := s.sentBefore(ctx, msg); err != nil || old != nil {
			return old, err
		}
	}
	if err := s.preSend(ctx, v, msg); err != nil {
		return nil, err
	}
	if err := s.sends.send(ctx, s, v, msg, in.Media, dedupe(in.Mentions)); err != nil {
		return nil, internal("send message", err)
	}
	return msg, nil
}

// newMessage checks in and returns the message it describes, not yet
// stored.
func (s *Service) newMessage(v viewer, in NewMessage) (*models.Message, error) {
	body, typ, err := s.checkContent(in.Body, len(in.Media), in.Location)
	if err != nil {
		return nil, err
	}
	if err := s.checkMediaList(in.Media); err != nil {
		return nil, err
	}
	if err := s.checkAttributes(in.Attributes); err != nil {
		return nil, err
	}
	if id := in.ClientMessageID; id != nil && (*id == "" || len(*id) > maxClientMessageIDBytes) {
		return nil, apperr.New(apperr.BadUserInput, "clientMessageId must be 1 to %d bytes", maxClientMessageIDBytes)
	}
	if len(in.Mentions) > MaxMentions {
		return nil, apperr.New(apperr.BadUserInput, "mentions lists %d identities; the limit is %d", len(in.Mentions), MaxMentions)
	}
	for _, identity := range in.Mentions {
		if err := checkIdentity(identity); err != nil {
			return nil, err
		}
	}
	if err := s.checkName("senderDisplayName", in.SenderDisplayName); err != nil {
		return nil, err
	}
	priority := in.Priority
	switch priority {
	case "":
		priority = models.PriorityNormal
	case models.PriorityNormal, models.PriorityHigh:
	default:
		return nil, apperr.New(apperr.BadUserInput, "priority must be NORMAL or HIGH")
	}
	msg := &models.Message{
		ID: newID(), ChannelID: in.ChannelID, AuthorID: &v.UserID, Body: body, Attributes: in.Attributes, CreatedAt: now(),
		StoredType: typ, StoredOrigin: models.OriginUser, StoredPriority: priority, ClientMessageID: in.ClientMessageID,
		SenderDisplayName: in.SenderDisplayName, MentionIDs: []string{},
	}
	if in.Location != nil {
		msg.Latitude, msg.Longitude = &in.Location.Latitude, &in.Location.Longitude
	}
	return msg, nil
}

// checkContent applies the rule that a message needs at least one of a
// body, media (media is how many attachments it has) and a location, and
// checks each: the body's size and encoding, the location's range. It
// returns the body to store (empty when it is blank and the message has
// media or a location) and the message's type: MEDIA with media, else
// LOCATION with a location, else TEXT. BAD_USER_INPUT otherwise.
func (s *Service) checkContent(body string, media int, loc *models.Location) (string, models.MessageType, error) {
	typ := models.MessageText
	switch {
	case media > 0:
		typ = models.MessageMedia
	case loc != nil:
		typ = models.MessageLocation
	}
	if loc != nil {
		if err := checkLocation(*loc); err != nil {
			return "", "", err
		}
	}
	if typ != models.MessageText && strings.TrimSpace(body) == "" {
		return "", typ, nil
	}
	if typ == models.MessageText && body == "" {
		return "", "", apperr.New(apperr.BadUserInput, "body must not be empty: a message needs a body, media or a location")
	}
	return body, typ, s.checkBody(body)
}

// checkLocation is BAD_USER_INPUT unless latitude is -90 to 90 and
// longitude -180 to 180.
func checkLocation(l models.Location) error {
	if !(l.Latitude >= -90 && l.Latitude <= 90) {
		return apperr.New(apperr.BadUserInput, "latitude must be -90 to 90")
	}
	if !(l.Longitude >= -180 && l.Longitude <= 180) {
		return apperr.New(apperr.BadUserInput, "longitude must be -180 to 180")
	}
	return nil
}

// dedupe returns ss without repeats, in first-seen order.
func dedupe(ss []string) []string {
	var out []string
	for _, x := range ss {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// sentBefore returns the stored message that msg repeats (same channel,
// author and client id), or nil.
func (s *Service) sentBefore(ctx context.Context, msg *models.Message) (*models.Message, error) {
	var old models.Message
	err := s.store.DB(ctx).Take(&old, "channel_id = ? AND author_id = ? AND client_message_id = ?", msg.ChannelID, *msg.AuthorID, *msg.ClientMessageID).Error
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("look up client message id", err)
	}
	return &old, nil
}

// MessageEdit is the input of EditMessage: a field left nil (or unset)
// stays as it is.
type MessageEdit struct {
	Body            *string
	Attributes      models.JSON
	AttributesPatch Optional[models.JSON]
}

// EditMessage replaces a message's body, and its attributes when given, or
// merges a patch into them, and records the caller as updatedBy. The
// author only, while a member; a deleted message cannot be edited.
// BAD_USER_INPUT when nothing is given, for attributes and attributesPatch
// at once, a blank body of a TEXT message, or a body or attributes over
// their limits. A patch is merged into the attributes as they are when
// the message row is locked.
func (s *Service) EditMessage(ctx context.Context, id string, in MessageEdit) (*models.Message, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	attrs := attributesChange{Attributes: Optional[models.JSON]{Set: in.Attributes != nil, Value: in.Attributes}, Patch: in.AttributesPatch}
	if in.Body == nil && !attrs.Attributes.Set && !attrs.Patch.Set {
		return nil, apperr.New(apperr.BadUserInput, "give body, attributes or attributesPatch")
	}
	if err := s.checkAttributesChange(attrs); err != nil {
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
		changes := map[string]any{"edited_at": now(), "updated_by_id": v.UserID}
		if in.Body != nil {
			body, err := s.checkEditedBody(*in.Body, msg.Type())
			if err != nil {
				return err
			}
			changes["body"] = body
		}
		if attrs.Patch.Set {
			var locked models.Message
			if err := forUpdate(tx).Select("attributes").Take(&locked, "id = ?", id).Error; err != nil {
				return err
			}
			msg.Attributes = locked.Attributes
		}
		value, changed, err := s.applyAttributesChange(msg.Attributes, attrs)
		if err != nil {
			return err
		}
		if changed {
			changes["attributes"] = value
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

// checkEditedBody checks a new body of a message of type typ: blank is
// allowed (and stored empty) where checkContent allows it.
func (s *Service) checkEditedBody(body string, typ models.MessageType) (string, error) {
	if typ == models.MessageText {
		return body, s.checkBody(body)
	}
	if strings.TrimSpace(body) == "" {
		return "", nil
	}
	return body, s.checkBody(body)
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
			UpdateColumns(map[string]any{"body": "", "attributes": nil, "latitude": nil, "longitude": nil, "deleted_at": now()})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 {
			// The channel's row first, as a send batch locks it before
			// the memberships that skipDeleted updates.
			err = tx.Model(&models.Channel{}).Where("id = ?", msg.ChannelID).
				UpdateColumn("messages_count", gorm.Expr("messages_count - 1")).Error
			if err != nil {
				return err
			}
			if err := skipDeleted(tx, &msg); err != nil {
				return err
			}
			if err := tx.Delete(&models.MessageMention{}, "message_id = ?", id).Error; err != nil {
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
			// The channel as the deletion left it, for unreadChanged.
			var ch models.Channel
			if err := tx.Take(&ch, "id = ?", tomb.ChannelID).Error; err != nil {
				return err
			}
			out.add(channelTopic(tomb.ChannelID), &event{Kind: evMessageRemoved, Message: &tomb, Channel: &ch})
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
// Without first or last it returns the latest page. A filter (nil for
// none) keeps the messages that pass it; BAD_USER_INPUT for one over its
// limits.
func (s *Service) Messages(ctx context.Context, channelID string, args PageArgs, filter *MessageFilter) (*Page[*models.Message], error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if filter.empty() {
		filter = nil
	} else if err := filter.check(); err != nil {
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
	if filter != nil {
		return s.filteredMessages(ctx, v, a, filter, n, backward, after, before)
	}
	rows, err := readPage(q.Where("channel_id = ?", channelID), "idx", indexRange{From: int64(a.historyStart())}, after, before, backward, n)
	if err != nil {
		return nil, internal("list messages", err)
	}
	return messagePage(rows, a.historyStart(), a.ch.NextMessageIndex, after, before), nil
}

// indexRange is the message indexes From to To, both included, To nil for
// no upper bound. It narrows to a single bound each way because SQLite
// ranges over an index by one lower bound only: given idx >= start AND
// idx > cursor, it scanned from start, a page after a cursor near the end
// of a long history reading the whole history.
type indexRange struct {
	From int64
	To   *int64
}

// atLeast is r without the indexes below n.
func (r indexRange) atLeast(n int64) indexRange {
	r.From = max(r.From, n)
	return r
}

// atMost is r without the indexes above n.
func (r indexRange) atMost(n int64) indexRange {
	if r.To == nil || n < *r.To {
		r.To = &n
	}
	return r
}

// between is r between the cursors, both excluded.
func (r indexRange) between(after, before *cursor) indexRange {
	if after != nil {
		r = r.atLeast(after.N + 1)
	}
	if before != nil {
		r = r.atMost(before.N - 1)
	}
	return r
}

// where adds r to q, with idx the column of the message index as q names
// it.
func (r indexRange) where(q *gorm.DB, idx string) *gorm.DB {
	q = q.Where(idx+" >= ?", r.From)
	if r.To != nil {
		q = q.Where(idx+" <= ?", *r.To)
	}
	return q
}

// readPage reads through q the first (or, backward, the last) limit
// messages of r between the cursors, in the order of column idx, the
// message index as q names it.
func readPage(q *gorm.DB, idx string, r indexRange, after, before *cursor, backward bool, limit int) ([]*models.Message, error) {
	order := idx
	if backward {
		order = idx + " DESC"
	}
	var rows []*models.Message
	if err := r.between(after, before).where(q, idx).Order(order).Limit(limit).Find(&rows).Error; err != nil {
		return nil, err
	}
	if backward {
		slices.Reverse(rows)
	}
	return rows, nil
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
