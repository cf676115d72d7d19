package chat

import (
	"context"
	"slices"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/models"
)

// directKey identifies the DIRECT channel of two users whichever of them
// asks: their user ids, sorted, joined by a colon. A user's notes to self
// have the key of the user twice.
func directKey(a, b string) string {
	ids := []string{a, b}
	slices.Sort(ids)
	return ids[0] + ":" + ids[1]
}

// DirectChannel returns the DIRECT channel of the caller and the user with
// identity (created when unknown), creating it on first use: the same
// channel whichever of the two asks, also when both ask at once (a unique
// key makes the second insert do nothing). Both are its ADMINs, and its
// members never change: adding, inviting, joining, leaving and removing
// are FORBIDDEN. The caller's own identity gives their notes-to-self
// channel, of one member. It is never listed in publicChannels.
// BAD_USER_INPUT for an invalid identity. A token limited by grants gets
// the channel only when they name it: NOT_FOUND for an existing one they do
// not name, FORBIDDEN for one that does not exist yet.
func (s *Service) DirectChannel(ctx context.Context, identity string) (*models.Channel, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(identity); err != nil {
		return nil, err
	}
	var (
		ch  *models.Channel
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		other, err := ensureUser(tx, identity, nil)
		if err != nil {
			return err
		}
		key := directKey(v.UserID, other.ID)
		var found models.Channel
		err = tx.Take(&found, "direct_key = ?", key).Error
		if isNotFound(err) {
			if err := v.mayCreate(nil); err != nil {
				return err
			}
			ch, out, err = insertDirectChannel(tx, v, other.ID, key)
			if err != nil || ch != nil {
				return err
			}
			// A concurrent call created it first.
			err = tx.Take(&found, "direct_key = ?", key).Error
		}
		if err != nil {
			return err
		}
		a, err := loadAccess(tx, v, found.ID)
		if err != nil {
			return err
		}
		ch = a.ch
		return nil
	})
	if err != nil {
		return nil, internal("direct channel", err)
	}
	s.flush(ctx, out)
	return ch, nil
}

// insertDirectChannel inserts the DIRECT channel with key of the caller and
// otherID, both ADMINs, and returns it with the events to publish after
// commit; a nil channel when a concurrent writer inserted it first.
func insertDirectChannel(tx *gorm.DB, v viewer, otherID, key string) (*models.Channel, outbox, error) {
	t := now()
	ch := &models.Channel{
		ID: newID(), Type: models.ChannelDirect, State: models.StateActive, DirectKey: &key,
		CreatedByID: &v.UserID, CreatedAt: t, UpdatedAt: t, LastActivityUs: t.UnixMicro(),
	}
	members := []*models.Member{newMember(ch.ID, v.UserID, models.RoleAdmin, models.MemberJoined, t)}
	var out outbox
	out.add(userTopic(v.UserID), &event{Kind: evMyChannel, ChannelEvent: ChannelJoined, Channel: ch})
	if otherID != v.UserID {
		members = append(members, newMember(ch.ID, otherID, models.RoleAdmin, models.MemberJoined, t))
		out.add(userTopic(otherID), &event{Kind: evMyChannel, ChannelEvent: ChannelAdded, Channel: ch})
	}
	ch.MembersCount = len(members)
	res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "direct_key"}}, DoNothing: true}).Create(ch)
	if res.Error != nil || res.RowsAffected == 0 {
		return nil, nil, res.Error
	}
	if err := tx.Create(members).Error; err != nil {
		return nil, nil, err
	}
	hookCreated(&out, ch, members)
	return ch, out, nil
}
