package chat

import (
	"context"
	"slices"
	"strings"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// Message returns a message the caller may see (see loadMessageAccess),
// and nil when it does not exist or they may not.
func (s *Service) Message(ctx context.Context, id string) (*models.Message, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	var msg models.Message
	_, err = loadMessageAccess(s.store.DB(ctx), v, id, &msg)
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, internal("load message", err)
	}
	return &msg, nil
}

// Mentions returns the users a message mentions, in the order the sender
// named them when a live event carries them, by user id otherwise; users
// whose account is gone are left out. Batched per request.
func (s *Service) Mentions(ctx context.Context, m *models.Message) ([]*models.User, error) {
	ids := m.MentionIDs
	if ids == nil {
		var err error
		if ids, err = s.loaders(ctx).mentionLoader().Load(ctx, m.ID); err != nil {
			return nil, err
		}
	}
	return s.usersOf(ctx, ids)
}

// usersOf loads users by id through the loader, leaving out those that no
// longer exist.
func (s *Service) usersOf(ctx context.Context, ids []string) ([]*models.User, error) {
	if len(ids) == 0 {
		return []*models.User{}, nil
	}
	users, err := s.loaders(ctx).userLoader().LoadAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(users, func(u *models.User) bool { return u == nil }), nil
}

// mentionsByMessage loads the mentioned user ids of messages for a loader.
func (s *Service) mentionsByMessage(ctx context.Context, messageIDs []string) ([][]string, []error) {
	byMessage, err := mentionsOf(s.store.DB(ctx), messageIDs)
	if err != nil {
		return nil, []error{internal("load mentions", err)}
	}
	out := make([][]string, len(messageIDs))
	for i, id := range messageIDs {
		out[i] = byMessage[id]
	}
	return out, nil
}

// mentionsOf reads through db, in one query, the users each of the
// messages messageIDs mentions, by message ID, in user ID order.
func mentionsOf(db *gorm.DB, messageIDs []string) (map[string][]string, error) {
	var rows []models.MessageMention
	if err := db.Where("message_id IN ?", messageIDs).Order("user_id").Find(&rows).Error; err != nil {
		return nil, err
	}
	byMessage := make(map[string][]string, len(messageIDs))
	for _, r := range rows {
		byMessage[r.MessageID] = append(byMessage[r.MessageID], r.UserID)
	}
	return byMessage, nil
}

// UpdatedBy returns who edited a message last, or nil.
func (s *Service) UpdatedBy(ctx context.Context, m *models.Message) (*models.User, error) {
	return s.UserByID(ctx, m.UpdatedByID)
}

// MessageMember returns the author's JOINED membership of the message's
// channel, or nil (a system message, or an author who left). Batched per
// request.
func (s *Service) MessageMember(ctx context.Context, m *models.Message) (*models.Member, error) {
	if m.AuthorID == nil {
		return nil, nil
	}
	return s.loaders(ctx).memberLoader().Load(ctx, m.ChannelID+memberKeySep+*m.AuthorID)
}

// memberKeySep separates the channel and user ids of a member loader key.
const memberKeySep = "/"

// membersByKey loads JOINED memberships by "channelID/userID" keys for a
// loader, nil where there is none.
func (s *Service) membersByKey(ctx context.Context, keys []string) ([]*models.Member, []error) {
	pairs := make([][]any, len(keys))
	for i, k := range keys {
		channelID, userID, _ := strings.Cut(k, memberKeySep)
		pairs[i] = []any{channelID, userID}
	}
	var rows []*models.Member
	err := s.store.DB(ctx).Where("(channel_id, user_id) IN ? AND status = ?", pairs, models.MemberJoined).Find(&rows).Error
	if err != nil {
		return nil, []error{internal("load members", err)}
	}
	return byID(keys, rows, func(m *models.Member) string { return m.ChannelID + memberKeySep + m.UserID }), nil
}

// Mine reports whether the caller wrote m.
func (s *Service) Mine(ctx context.Context, m *models.Message) (bool, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return false, err
	}
	return m.AuthorID != nil && *m.AuthorID == v.UserID, nil
}

// Read reports whether m is read for the caller: their own, a system
// message, or at or before their read horizon.
func (s *Service) Read(ctx context.Context, m *models.Message) (bool, error) {
	if m.Type() == models.MessageSystem {
		return true, nil
	}
	mine, err := s.Mine(ctx, m)
	if err != nil || mine {
		return mine, err
	}
	me, err := s.loaders(ctx).myMembershipLoader().Load(ctx, m.ChannelID)
	if err != nil || me == nil || me.LastReadIndex == nil {
		return false, err
	}
	return m.Index <= *me.LastReadIndex, nil
}

// SystemActor returns who made the change a system event reports, or nil.
func (s *Service) SystemActor(ctx context.Context, e *models.SystemEvent) (*models.User, error) {
	return s.UserByID(ctx, e.ActorID)
}

// SystemUsers returns whom a system event is about.
func (s *Service) SystemUsers(ctx context.Context, e *models.SystemEvent) ([]*models.User, error) {
	return s.usersOf(ctx, e.UserIDs)
}
