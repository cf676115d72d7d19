package chat

import (
	"context"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
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

// apply adds f's conditions to q, a query over channelID's messages, for
// viewer userID, with authorIDs the user ids of f.Authors. Each is served
// by an index: authors by idx_messages_channel_author, types and hasMedia
// by idx_messages_channel_type, mentionsMe by idx_message_mentions_user
// (and the mentions' primary key when false), the index range by the
// primary history index.
func (f *MessageFilter) apply(q *gorm.DB, channelID, userID string, authorIDs []string) *gorm.DB {
	if len(f.Types) > 0 {
		q = q.Where("type IN ?", f.Types)
	}
	if len(f.Authors) > 0 {
		if len(authorIDs) == 0 {
			return q.Where("1 = 0") // no such author
		}
		q = q.Where("author_id IN ?", authorIDs)
	}
	if f.FromIndex != nil {
		q = q.Where("idx >= ?", *f.FromIndex)
	}
	if f.ToIndex != nil {
		q = q.Where("idx <= ?", *f.ToIndex)
	}
	if f.HasMedia != nil {
		if *f.HasMedia {
			q = q.Where("type = ?", models.MessageMedia)
		} else {
			q = q.Where("type <> ?", models.MessageMedia)
		}
	}
	if f.MentionsMe != nil {
		if *f.MentionsMe {
			q = q.Where("idx IN (SELECT x.idx FROM message_mentions x WHERE x.user_id = ? AND x.channel_id = ?)", userID, channelID)
		} else {
			q = q.Where("NOT EXISTS (SELECT 1 FROM message_mentions x WHERE x.message_id = messages.id AND x.user_id = ?)", userID)
		}
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
func (s *Service) filteredMessages(ctx context.Context, v viewer, a *access, f *MessageFilter, n int, backward bool, after, before *cursor) (*Page[*models.Message], error) {
	channelID := a.ch.ID
	var authorIDs []string
	if len(f.Authors) > 0 {
		if err := s.store.DB(ctx).Model(&models.User{}).Where("identity IN ?", f.Authors).Pluck("id", &authorIDs).Error; err != nil {
			return nil, internal("list messages", err)
		}
	}
	base := func() *gorm.DB {
		return f.apply(s.store.DB(ctx).Model(&models.Message{}).Where("channel_id = ? AND idx >= ?", channelID, a.historyStart()), channelID, v.UserID, authorIDs)
	}
	rows, err := readPage(base(), after, before, backward, n+1)
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
	// The other side: before the after cursor going forward, from the
	// before cursor on going backward.
	var other *gorm.DB
	switch {
	case !backward && after != nil:
		other = base().Where("idx <= ?", after.N)
	case backward && before != nil:
		other = base().Where("idx >= ?", before.N)
	}
	var beyond bool
	if other != nil {
		var found []int
		if err := other.Limit(1).Pluck("idx", &found).Error; err != nil {
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
