package chat

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
)

// MaxAdminBatch caps the items of one importMessages or upsertUsers call.
const MaxAdminBatch = 1000

// importBatch is how many imported messages one INSERT carries.
const importBatch = 200

// ImportedMessage is one message of ImportMessages.
type ImportedMessage struct {
	// Author is the author's identity; an unknown one becomes a user.
	Author     string
	Body       string
	Attributes models.JSON
	CreatedAt  time.Time
}

// UserUpsert is one user of UpsertUsers: the fields Set change, the others
// stay as they are.
type UserUpsert struct {
	Identity     string
	FriendlyName Optional[*string]
	PhotoURL     Optional[*string]
	Attributes   Optional[models.JSON]
}

// requireAdmin is FORBIDDEN unless v's token is an admin token.
func requireAdmin(v viewer, what string) error {
	if !v.admin {
		return apperr.New(apperr.Forbidden, "only an admin token may %s", what)
	}
	return nil
}

// ImportMessages appends msgs, history from another system, to a channel
// after its last message, in the order given, through the bulk path
// (db.ImportMessagesTx), and returns how many it stored. Admin tokens only
// (FORBIDDEN); NOT_FOUND for no such channel; BAD_USER_INPUT over
// MaxAdminBatch messages, for a body or attributes as sendMessage refuses
// them, an invalid author, or a createdAt before the previous one's, and
// nothing is stored. Imported messages push nothing, call no webhook and
// are announced to no subscriber; every joined member's read horizon moves
// past them, so they are unread for nobody.
func (s *Service) ImportMessages(ctx context.Context, channelID string, msgs []ImportedMessage) (int, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return 0, err
	}
	if err := requireAdmin(v, "import messages"); err != nil {
		return 0, err
	}
	if len(msgs) > MaxAdminBatch {
		return 0, apperr.New(apperr.BadUserInput, "messages lists %d messages; the limit is %d", len(msgs), MaxAdminBatch)
	}
	identities := make([]string, 0, len(msgs))
	for i, m := range msgs {
		if err := checkIdentity(m.Author); err != nil {
			return 0, apperr.New(apperr.BadUserInput, "messages[%d].author: %s", i, err.Error())
		}
		if err := s.checkBody(m.Body); err != nil {
			return 0, apperr.New(apperr.BadUserInput, "messages[%d]: %s", i, err.Error())
		}
		if err := s.checkAttributes(m.Attributes); err != nil {
			return 0, apperr.New(apperr.BadUserInput, "messages[%d]: %s", i, err.Error())
		}
		if i > 0 && m.CreatedAt.Before(msgs[i-1].CreatedAt) {
			return 0, apperr.New(apperr.BadUserInput, "messages[%d].createdAt is before the message before it; give the messages in order", i)
		}
		if !slices.Contains(identities, m.Author) {
			identities = append(identities, m.Author)
		}
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	err = s.store.Write(ctx, func(tx *gorm.DB) error {
		var ch models.Channel
		err := forUpdate(tx).Select("id", "next_message_index", "counted_messages").Take(&ch, "id = ?", channelID).Error
		if isNotFound(err) {
			return errChannelNotFound()
		}
		if err != nil {
			return err
		}
		authors, err := ensureUsers(tx, identities)
		if err != nil {
			return err
		}
		rows := make([]*models.Message, len(msgs))
		for i, m := range msgs {
			rows[i] = &models.Message{
				ID: newID(), ChannelID: channelID, Index: ch.NextMessageIndex + i, Ordinal: ch.CountedMessages + i, AuthorID: &authors[m.Author].ID,
				Body: m.Body, Attributes: m.Attributes, CreatedAt: m.CreatedAt.UTC().Truncate(time.Microsecond),
				StoredType: models.MessageText, StoredOrigin: models.OriginImport, StoredPriority: models.PriorityNormal,
			}
		}
		// The horizons move first: ImportMessagesTx recounts the
		// members' unread messages from them.
		last := rows[len(rows)-1].Index
		err = tx.Model(&models.Member{}).
			Where("channel_id = ? AND status = ? AND (last_read_index IS NULL OR last_read_index < ?)", channelID, models.MemberJoined, last).
			UpdateColumns(map[string]any{"last_read_index": last, "last_read_at": now()}).Error
		if err != nil {
			return err
		}
		return db.ImportMessagesTx(tx, channelID, rows, importBatch)
	})
	if err != nil {
		return 0, internal("import messages", err)
	}
	return len(msgs), nil
}

// UpsertUsers creates or updates users by identity, in one transaction, and
// returns them in the order given. Admin tokens only (FORBIDDEN);
// BAD_USER_INPUT over MaxAdminBatch users, for an identity listed twice, or
// a field as updateMe refuses it, and nothing is written. A changed user is
// announced with userUpdated, with the reasons of the fields given.
func (s *Service) UpsertUsers(ctx context.Context, users []UserUpsert) ([]*models.User, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(v, "upsert users"); err != nil {
		return nil, err
	}
	if len(users) > MaxAdminBatch {
		return nil, apperr.New(apperr.BadUserInput, "users lists %d users; the limit is %d", len(users), MaxAdminBatch)
	}
	identities := make([]string, len(users))
	for i, u := range users {
		if err := checkIdentity(u.Identity); err != nil {
			return nil, apperr.New(apperr.BadUserInput, "users[%d].identity: %s", i, err.Error())
		}
		if slices.Contains(identities[:i], u.Identity) {
			return nil, apperr.New(apperr.BadUserInput, "users[%d]: identity %q is listed twice", i, u.Identity)
		}
		identities[i] = u.Identity
		if err := s.checkName("friendlyName", u.FriendlyName.Value); err != nil {
			return nil, err
		}
		if err := checkPhotoURL(u.PhotoURL.Value); err != nil {
			return nil, err
		}
		if err := s.checkAttributes(u.Attributes.Value); err != nil {
			return nil, err
		}
	}
	if len(users) == 0 {
		return []*models.User{}, nil
	}
	var (
		out    []*models.User
		events outbox
	)
	err = s.write(ctx, &events, func(tx *gorm.DB) error {
		if _, err := ensureUsers(tx, identities); err != nil {
			return err
		}
		at := now()
		changed := map[string][]string{}
		for _, u := range users {
			changes, reasons := u.changes()
			if len(changes) == 0 {
				continue
			}
			changes["updated_at"] = at
			if err := tx.Model(&models.User{}).Where("identity = ?", u.Identity).UpdateColumns(changes).Error; err != nil {
				return err
			}
			changed[u.Identity] = reasons
		}
		var rows []*models.User
		if err := tx.Where("identity IN ?", identities).Find(&rows).Error; err != nil {
			return err
		}
		byIdentity := make(map[string]*models.User, len(rows))
		for _, u := range rows {
			byIdentity[u.Identity] = u
		}
		out = make([]*models.User, len(identities))
		for i, identity := range identities {
			out[i] = byIdentity[identity]
			if reasons := changed[identity]; reasons != nil {
				events.add(profileTopic(out[i].ID), &event{Kind: evUserUpdated, User: out[i], Reasons: reasons})
			}
		}
		return nil
	})
	if err != nil {
		return nil, internal("upsert users", err)
	}
	s.flush(ctx, events)
	return out, nil
}

// changes are the columns u sets, with the userUpdated reasons.
func (u UserUpsert) changes() (map[string]any, []string) {
	changes := map[string]any{}
	var reasons []string
	if u.FriendlyName.Set {
		changes["friendly_name"], reasons = u.FriendlyName.Value, append(reasons, ReasonFriendlyName)
	}
	if u.Attributes.Set {
		changes["attributes"], reasons = u.Attributes.Value, append(reasons, ReasonAttributes)
	}
	if u.PhotoURL.Set {
		changes["photo_url"], reasons = u.PhotoURL.Value, append(reasons, ReasonPhoto)
	}
	return changes, reasons
}

// DeleteUser removes the user with identity and returns their id, or nil
// when there is none. Admin tokens only (FORBIDDEN). In one transaction it
// removes their memberships (announced with memberLeft; an OWNER's channel
// passes to its longest-standing ADMIN, or else MEMBER), their push
// registrations and their profile; their messages stay as deleted
// tombstones without an author. The user's tokens keep working: their next
// request makes a new, empty user.
func (s *Service) DeleteUser(ctx context.Context, identity string) (*string, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(v, "delete users"); err != nil {
		return nil, err
	}
	var (
		removed *string
		out     outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		var u models.User
		err := tx.Take(&u, "identity = ?", identity).Error
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		removed = &u.ID
		if err := s.removeMemberships(tx, &out, u.ID); err != nil {
			return err
		}
		if err := tombstoneMessages(tx, u.ID); err != nil {
			return err
		}
		if _, err := markMediaDeleted(tx, "uploader_id = ?", u.ID); err != nil {
			return err
		}
		if err := tx.Delete(&models.PushRegistration{}, "user_id = ?", u.ID).Error; err != nil {
			return err
		}
		return tx.Delete(&models.User{}, "id = ?", u.ID).Error
	})
	if err != nil {
		return nil, internal("delete user", err)
	}
	s.users.forget(identity)
	s.flush(ctx, out)
	if removed != nil {
		s.purgeDeletedMedia(ctx, "uploader_id = ?", *removed)
	}
	return removed, nil
}

// removeMemberships deletes every membership of user, counting the joined
// ones off their channels, handing an OWNER's channel over, and adding the
// events to out.
func (s *Service) removeMemberships(tx *gorm.DB, out *outbox, userID string) error {
	var channelIDs []string
	if err := tx.Model(&models.Member{}).Where("user_id = ?", userID).Pluck("channel_id", &channelIDs).Error; err != nil {
		return err
	}
	if err := lockChannels(tx, channelIDs...); err != nil {
		return err
	}
	var mine []*models.Member
	if err := forUpdate(tx).Where("user_id = ?", userID).Order("channel_id").Find(&mine).Error; err != nil {
		return err
	}
	if len(mine) == 0 {
		return nil
	}
	if err := tx.Delete(&models.Member{}, "user_id = ?", userID).Error; err != nil {
		return err
	}
	for _, m := range mine {
		if !m.Joined() {
			continue
		}
		if err := addMembersCount(tx, m.ChannelID, -1); err != nil {
			return err
		}
		out.add(channelTopic(m.ChannelID), &event{Kind: evMemberLeft, Member: m})
		if m.Role != models.RoleOwner {
			continue
		}
		successor, err := promoteSuccessor(tx, m.ChannelID)
		if err != nil {
			return err
		}
		if successor != nil {
			out.add(channelTopic(m.ChannelID), &event{Kind: evMemberUpdated, Member: successor, Reasons: []string{ReasonRole}})
		}
	}
	return nil
}

// tombstoneMessages empties and deletes every message of author, counting
// the ones not yet deleted off their channels, removes their mentions and
// the mentions of author, takes the author off all of them and recounts
// the unread messages of their channels' members.
func tombstoneMessages(tx *gorm.DB, authorID string) error {
	var counts []struct {
		ChannelID string
		N         int
	}
	err := tx.Model(&models.Message{}).Select("channel_id, count(*) AS n").
		Where("author_id = ? AND deleted_at IS NULL", authorID).Group("channel_id").Order("channel_id").Scan(&counts).Error
	if err != nil {
		return err
	}
	for _, c := range counts {
		if err := tx.Model(&models.Channel{}).Where("id = ?", c.ChannelID).
			UpdateColumn("messages_count", gorm.Expr("messages_count - ?", c.N)).Error; err != nil {
			return err
		}
	}
	err = tx.Model(&models.Message{}).Where("author_id = ? AND deleted_at IS NULL", authorID).
		UpdateColumns(map[string]any{"body": "", "attributes": nil, "latitude": nil, "longitude": nil, "deleted_at": now()}).Error
	if err != nil {
		return err
	}
	// Their messages' mentions, and the mentions of them, go too.
	err = tx.Where("user_id = ? OR message_id IN (SELECT id FROM messages WHERE author_id = ?)", authorID, authorID).
		Delete(&models.MessageMention{}).Error
	if err != nil {
		return err
	}
	err = tx.Model(&models.Message{}).Where("author_id = ?", authorID).UpdateColumn("author_id", nil).Error
	if err != nil {
		return err
	}
	channelIDs := make([]string, len(counts))
	for i, c := range counts {
		channelIDs[i] = c.ChannelID
	}
	return db.RecountChannelsUnread(tx, channelIDs)
}
