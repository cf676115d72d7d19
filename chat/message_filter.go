package chat

import (
	"context"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
)

// MessageFilter narrows a history: every field given must hold.
type MessageFilter struct {
	// Types, when not empty, are the types to keep.
	Types []models.MessageType
	// Authors, when not empty, are the authors' identities to keep.
	Authors []string
	// FromIndex and ToIndex bound the indexes, both included.
	FromIndex, ToIndex *int
	// HasMedia keeps MEDIA messages (true) or the others (false).
	HasMedia *bool
	// MentionsMe keeps the messages that mention the caller (true) or
	// those that do not (false).
	MentionsMe *bool
}

// maxFilterAuthors caps MessageFilter.Authors.
const maxFilterAuthors = 100

// empty reports whether f keeps every message.
func (f *MessageFilter) empty() bool {
	return f == nil || (len(f.Types) == 0 && len(f.Authors) == 0 && f.FromIndex == nil && f.ToIndex == nil && f.HasMedia == nil && f.MentionsMe == nil)
}

// check is BAD_USER_INPUT for a filter over its limits.
func (f *MessageFilter) check() error {
	if len(f.Authors) > maxFilterAuthors {
		return apperr.New(apperr.BadUserInput, "filter.authors lists %d identities; the limit is %d", len(f.Authors), maxFilterAuthors)
	}
	for _, t := range f.Types {
		if err := t.UnmarshalGQL(string(t)); err != nil {
			return apperr.New(apperr.BadUserInput, "filter.types: %v", err)
		}
	}
	return nil
}

// The join from the caller's mentions (alias mm) to their messages (alias
// messages), in an order that each planner keeps: mentions outside, one
// probe of idx_messages_channel_index per mention. SQLite keeps a CROSS
// JOIN's left table as the outer loop; PostgreSQL reorders joins freely,
// and with a plain join it merged the two indexes, walking the channel's
// history backwards to the oldest mention of the page, so the messages
// are a LATERAL subquery that OFFSET 0 keeps from being flattened.
const (
	mentionedMessagesSQLite   = "CROSS JOIN messages"
	mentionedMessagesPostgres = "CROSS JOIN LATERAL (SELECT * FROM messages WHERE messages.channel_id = mm.channel_id AND messages.idx = mm.idx OFFSET 0) messages"
)

// span is the indexes f keeps from a history that starts at start.
func (f *MessageFilter) span(start int) indexRange {
	r := indexRange{From: int64(start)}
	if f.FromIndex != nil {
		r = r.atLeast(int64(*f.FromIndex))
	}
	if f.ToIndex != nil {
		r = r.atMost(int64(*f.ToIndex))
	}
	return r
}

// mentionsDriven reports whether f keeps only the messages that mention
// the caller: such a history is read from the caller's mentions.
func (f *MessageFilter) mentionsDriven() bool {
	return f.MentionsMe != nil && *f.MentionsMe
}

// apply adds f's conditions on the messages to q, a query over a channel's
// messages, for viewer userID, with authorIDs the user ids of f.Authors.
// Each is served by an index: authors by idx_messages_channel_author,
// types and hasMedia by idx_messages_channel_type, mentionsMe false by the
// mentions' primary key. The index range (see span) and mentionsMe true
// (see filteredMessages) are not conditions here.
func (f *MessageFilter) apply(q *gorm.DB, userID string, authorIDs []string) *gorm.DB {
	if len(f.Types) > 0 {
		q = q.Where("messages.type IN ?", f.Types)
	}
	if len(f.Authors) > 0 {
		if len(authorIDs) == 0 {
			return q.Where("1 = 0") // no such author
		}
		q = q.Where("messages.author_id IN ?", authorIDs)
	}
	if f.HasMedia != nil {
		if *f.HasMedia {
			q = q.Where("messages.type = ?", models.MessageMedia)
		} else {
			q = q.Where("messages.type <> ?", models.MessageMedia)
		}
	}
	if f.MentionsMe != nil && !*f.MentionsMe {
		q = q.Where("NOT EXISTS (SELECT 1 FROM message_mentions x WHERE x.message_id = messages.id AND x.user_id = ?)", userID)
	}
	return q
}

// filteredMessages is Messages with a filter: the filtered indexes have
// gaps, so it reads one row past the page to tell whether more follow in
// the direction of travel, and asks whether any message on the other side
// of the cursor passes the filter.
//
// The authors' identities become user ids first, in a query of their own:
// given the ids as values, both planners read a single author's messages
// newest first from idx_messages_channel_author, where a subquery over
// users left PostgreSQL walking the whole history backwards to find a
// rare author's page.
//
// With mentionsMe true the history is read from the caller's mentions, in
// the order of idx_message_mentions_user (user_id, channel_id, idx), each
// joined to its message by (channel_id, idx): a page costs the mentions it
// passes over, not the messages between them (see
// mentionedMessagesSQLite).
func (s *Service) filteredMessages(ctx context.Context, v viewer, a *access, f *MessageFilter, n int, backward bool, after, before *cursor) (*Page[*models.Message], error) {
	channelID := a.ch.ID
	var authorIDs []string
	if len(f.Authors) > 0 {
		if err := s.store.DB(ctx).Model(&models.User{}).Where("identity IN ?", f.Authors).Pluck("id", &authorIDs).Error; err != nil {
			return nil, internal("list messages", err)
		}
	}
	idx := "messages.idx"
	if f.mentionsDriven() {
		idx = "mm.idx"
	}
	base := func() *gorm.DB {
		q := s.store.DB(ctx).Model(&models.Message{})
		if f.mentionsDriven() {
			q = q.Table("message_mentions mm").Select(db.Columns(q, &models.Message{}, "messages")).Where("mm.user_id = ? AND mm.channel_id = ?", v.UserID, channelID)
			if q.Dialector.Name() == "sqlite" {
				q = q.Joins(mentionedMessagesSQLite).Where("messages.channel_id = mm.channel_id AND messages.idx = mm.idx")
			} else {
				q = q.Joins(mentionedMessagesPostgres)
			}
		} else {
			q = q.Where("messages.channel_id = ?", channelID)
		}
		return f.apply(q, v.UserID, authorIDs)
	}
	span := f.span(a.historyStart())
	rows, err := readPage(base(), idx, span, after, before, backward, n+1)
	if err != nil {
		return nil, internal("list messages", err)
	}
	more := len(rows) > n
	switch {
	case more && backward:
		rows = rows[1:]
	case more:
		rows = rows[:n]
	}
	page := &Page[*models.Message]{Items: rows}
	// The other side: up to the after cursor going forward, from the
	// before cursor on going backward. Ordered by the index from the
	// cursor on, so that both planners read an index range rather than
	// scan the table for any match.
	var other *gorm.DB
	switch {
	case !backward && after != nil:
		other = span.atMost(after.N).where(base(), idx).Order(idx + " DESC")
	case backward && before != nil:
		other = span.atLeast(before.N).where(base(), idx).Order(idx)
	}
	var beyond bool
	if other != nil {
		var found []int
		if err := other.Select(idx).Limit(1).Pluck(idx, &found).Error; err != nil {
			return nil, internal("list messages", err)
		}
		beyond = len(found) > 0
	}
	if backward {
		page.HasPrevious, page.HasNext = more, beyond
	} else {
		page.HasNext, page.HasPrevious = more, beyond
	}
	for _, m := range rows {
		page.Cursors = append(page.Cursors, encodeCursor(cursor{Kind: "msg", N: int64(m.Index)}))
	}
	return page, nil
}
