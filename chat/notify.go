package chat

import (
	"context"
	"slices"
	"strconv"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/models"
)

// ReasonNotifiable is the userUpdated reason for a user who got their first
// push registration or lost their last.
const ReasonNotifiable = "NOTIFIABLE"

// pushBodyChars is where a push's body is cut.
const pushBodyChars = 200

var _ delivery.PushSource = (*Service)(nil)

// NotificationLevel is m's notification level when m is the caller's own
// membership, and nil for anyone else's: only a member sees their level.
func (s *Service) NotificationLevel(ctx context.Context, m *models.Member) (*models.NotificationLevel, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if m.UserID != v.UserID {
		return nil, nil
	}
	level := m.NotificationLevel
	if level == "" {
		level = models.LevelDefault
	}
	return &level, nil
}

// SetNotificationLevel sets which of a channel's messages the caller gets
// pushes for: DEFAULT (all), MENTIONS (those that mention them) or MUTED
// (none). Joined members only (FORBIDDEN for an invitation, NOT_FOUND as
// for any channel the caller may not see); BAD_USER_INPUT for another
// level. The level is the caller's own business: no event announces it.
func (s *Service) SetNotificationLevel(ctx context.Context, channelID string, level models.NotificationLevel) (*models.Member, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	switch level {
	case models.LevelDefault, models.LevelMentions, models.LevelMuted:
	default:
		return nil, apperr.New(apperr.BadUserInput, "level must be DEFAULT, MENTIONS or MUTED")
	}
	var m models.Member
	err = s.store.Write(ctx, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, channelID)
		if err != nil {
			return err
		}
		if err := a.requireOwnMembership(); err != nil {
			return err
		}
		err = tx.Model(&models.Member{}).Where("id = ?", a.me.ID).
			UpdateColumns(map[string]any{"notification_level": level, "updated_at": now()}).Error
		if err != nil {
			return err
		}
		return tx.Take(&m, "id = ?", a.me.ID).Error
	})
	if err != nil {
		return nil, internal("set notification level", err)
	}
	return &m, nil
}

// Notifiable reports whether u has at least one push registration: as it
// was when the event carrying u happened, or else now.
func (s *Service) Notifiable(ctx context.Context, u *models.User) (bool, error) {
	if u.Notifiable != nil {
		return *u.Notifiable, nil
	}
	return s.loaders(ctx).notifiableLoader().Load(ctx, u.ID)
}

// notifiableByIDs answers the notifiable loader in one query.
func (s *Service) notifiableByIDs(ctx context.Context, ids []string) ([]bool, []error) {
	var with []string
	err := s.store.DB(ctx).Model(&models.PushRegistration{}).Distinct("user_id").Where("user_id IN ?", ids).Pluck("user_id", &with).Error
	if err != nil {
		return nil, []error{internal("load notifiable", err)}
	}
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = slices.Contains(with, id)
	}
	return out, nil
}

// notifiableFlips adds to out a userUpdated(NOTIFIABLE) for each of users
// whose having push registrations, read through tx now, differs from had.
func notifiableFlips(tx *gorm.DB, out *outbox, had map[string]bool) error {
	if len(had) == 0 {
		return nil
	}
	ids := make([]string, 0, len(had))
	for id := range had {
		ids = append(ids, id)
	}
	var with []string
	if err := tx.Model(&models.PushRegistration{}).Distinct("user_id").Where("user_id IN ?", ids).Pluck("user_id", &with).Error; err != nil {
		return err
	}
	var flipped []string
	for _, id := range ids {
		if had[id] != slices.Contains(with, id) {
			flipped = append(flipped, id)
		}
	}
	if len(flipped) == 0 {
		return nil
	}
	var users []*models.User
	if err := tx.Where("id IN ?", flipped).Order("id").Find(&users).Error; err != nil {
		return err
	}
	for _, u := range users {
		now := !had[u.ID]
		u.Notifiable = &now
		out.add(profileTopic(u.ID), &event{Kind: evUserUpdated, User: u, Reasons: []string{ReasonNotifiable}})
	}
	return nil
}

// hasRegistrations reads through tx which of users have a registration.
func hasRegistrations(tx *gorm.DB, users ...string) (map[string]bool, error) {
	var with []string
	if err := tx.Model(&models.PushRegistration{}).Distinct("user_id").Where("user_id IN ?", users).Pluck("user_id", &with).Error; err != nil {
		return nil, err
	}
	had := make(map[string]bool, len(users))
	for _, id := range users {
		had[id] = slices.Contains(with, id)
	}
	return had, nil
}

// recipient is a member who may get a push for a message, with a device.
type recipient struct {
	MessageID string
	UserID    string
	RegID     string
	Provider  models.PushProvider
	Token     string
}

// MessagePushes implements delivery.PushSource: for each of the messages
// with those IDs, one push per device of each of its recipients, by
// message ID. A message's recipients are its channel's joined members but
// the author who may see the message, whose level is DEFAULT, or MENTIONS
// when the message mentions them, and, unless PushAlways, who have no live
// connection on any node. A deleted message, a system message, or one gone
// with its channel pushes nothing. However many messages, it reads the
// messages, their channels and their authors in one query each, the
// recipients' devices in one join, presence once and the recipients'
// unread totals in one grouped query.
func (s *Service) MessagePushes(ctx context.Context, messageIDs []string) (map[string][]delivery.Push, error) {
	if len(messageIDs) == 0 {
		return nil, nil
	}
	q := s.store.DB(ctx)
	var msgs []*models.Message
	if err := q.Where("id IN ?", messageIDs).Order("id").Find(&msgs).Error; err != nil {
		return nil, internal("load pushed messages", err)
	}
	msgs = slices.DeleteFunc(msgs, func(m *models.Message) bool { return m.DeletedAt != nil || m.Type() == models.MessageSystem })
	if len(msgs) == 0 {
		return nil, nil
	}
	var channelIDs, authorIDs, ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
		if !slices.Contains(channelIDs, m.ChannelID) {
			channelIDs = append(channelIDs, m.ChannelID)
		}
		if m.AuthorID != nil && !slices.Contains(authorIDs, *m.AuthorID) {
			authorIDs = append(authorIDs, *m.AuthorID)
		}
	}
	channels := make(map[string]*models.Channel, len(channelIDs))
	var chs []*models.Channel
	if err := q.Where("id IN ?", channelIDs).Find(&chs).Error; err != nil {
		return nil, internal("load pushed messages' channels", err)
	}
	for _, ch := range chs {
		channels[ch.ID] = ch
	}
	senders := make(map[string]*models.User, len(authorIDs))
	if len(authorIDs) > 0 {
		var users []*models.User
		if err := q.Where("id IN ?", authorIDs).Find(&users).Error; err != nil {
			return nil, internal("load pushed messages' authors", err)
		}
		for _, u := range users {
			senders[u.ID] = u
		}
	}
	rows, err := pushRecipients(q, ids)
	if err != nil {
		return nil, internal("load push recipients", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	var users []string
	for _, r := range rows {
		if !slices.Contains(users, r.UserID) {
			users = append(users, r.UserID)
		}
	}
	if !s.pushAlways && s.presence != nil {
		online, err := s.presence.Online(ctx, users)
		if err != nil {
			return nil, internal("read presence for pushes", err)
		}
		rows = slices.DeleteFunc(rows, func(r recipient) bool { return online[r.UserID] })
		users = slices.DeleteFunc(users, func(id string) bool { return online[id] })
		if len(rows) == 0 {
			return nil, nil
		}
	}
	badges, err := unreadTotals(q, users)
	if err != nil {
		return nil, internal("count unread for pushes", err)
	}
	content := make(map[string]delivery.Push, len(msgs)) // each message's push, without device and badge
	for _, msg := range msgs {
		ch := channels[msg.ChannelID]
		if ch == nil {
			continue
		}
		var sender *models.User
		if msg.AuthorID != nil {
			sender = senders[*msg.AuthorID]
		}
		content[msg.ID] = delivery.Push{
			Title: pushTitle(ch, sender), Body: pushBody(msg), Data: pushData(msg, sender), CollapseID: msg.ID, ThreadID: ch.ID,
		}
	}
	out := make(map[string][]delivery.Push, len(content))
	for _, r := range rows {
		p, ok := content[r.MessageID]
		if !ok {
			continue
		}
		p.Device = delivery.Device{RegistrationID: r.RegID, Provider: r.Provider, Token: r.Token}
		p.Badge = badges[r.UserID]
		out[r.MessageID] = append(out[r.MessageID], p)
	}
	return out, nil
}

// pushRecipients reads through q, in one join, the devices of the
// recipients of the messages with those IDs (see MessagePushes; presence
// aside), one row per message and device, ordered by message and then
// registration.
func pushRecipients(q *gorm.DB, messageIDs []string) ([]recipient, error) {
	var rows []recipient
	err := q.Table("messages").
		Select("messages.id AS message_id, members.user_id AS user_id, push_registrations.id AS reg_id, "+
			"push_registrations.provider AS provider, push_registrations.token AS token").
		Joins("JOIN members ON members.channel_id = messages.channel_id").
		Joins("JOIN push_registrations ON push_registrations.user_id = members.user_id").
		Where("messages.id IN ? AND members.status = ? AND members.history_start <= messages.idx", messageIDs, models.MemberJoined).
		Where("(messages.author_id IS NULL OR members.user_id <> messages.author_id)").
		Where("members.notification_level = ? OR (members.notification_level = ? AND EXISTS "+
			"(SELECT 1 FROM message_mentions x WHERE x.message_id = messages.id AND x.user_id = members.user_id))",
			models.LevelDefault, models.LevelMentions).
		Order("messages.id, push_registrations.id").
		Scan(&rows).Error
	return rows, err
}

// pushTitle is the channel's friendly name, or else the sender's name.
func pushTitle(ch *models.Channel, sender *models.User) string {
	switch {
	case ch.FriendlyName != nil && *ch.FriendlyName != "":
		return *ch.FriendlyName
	case sender == nil:
		return ""
	case sender.FriendlyName != nil && *sender.FriendlyName != "":
		return *sender.FriendlyName
	default:
		return sender.Identity
	}
}

// pushBody is the message body cut at pushBodyChars characters.
func pushBody(m *models.Message) string {
	return truncateChars(m.Body, pushBodyChars)
}

// pushData are a push's data keys.
func pushData(m *models.Message, sender *models.User) map[string]string {
	data := map[string]string{
		"channelId": m.ChannelID,
		"messageId": m.ID,
		"index":     strconv.Itoa(m.Index),
		"type":      string(m.Type()),
	}
	if sender != nil {
		data["author"] = sender.Identity
	}
	return data
}

// PruneDevices implements delivery.PushSource: it removes the
// registrations a push provider refused, and publishes
// userUpdated(NOTIFIABLE) for a user left without any.
func (s *Service) PruneDevices(ctx context.Context, registrationIDs []string) error {
	var out outbox
	err := s.write(ctx, &out, func(tx *gorm.DB) error {
		var users []string
		if err := tx.Model(&models.PushRegistration{}).Distinct("user_id").Where("id IN ?", registrationIDs).Pluck("user_id", &users).Error; err != nil {
			return err
		}
		if len(users) == 0 {
			return nil
		}
		if err := tx.Delete(&models.PushRegistration{}, "id IN ?", registrationIDs).Error; err != nil {
			return err
		}
		had := make(map[string]bool, len(users))
		for _, id := range users {
			had[id] = true
		}
		return notifiableFlips(tx, &out, had)
	})
	if err != nil {
		return internal("prune push registrations", err)
	}
	s.flush(ctx, out)
	return nil
}
