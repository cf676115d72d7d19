package chat

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
)

// JoinChannel makes the caller a MEMBER of a public channel. Joining a
// channel twice returns the existing membership and publishes nothing; a
// caller invited to the channel (of any type) accepts the invitation, as
// AcceptInvite. NOT_FOUND for a private channel the caller is not in;
// FORBIDDEN for a DIRECT channel and, for a new member, a CLOSED one.
func (s *Service) JoinChannel(ctx context.Context, channelID string) (*models.Member, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	var (
		m   *models.Member
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, channelID)
		if err != nil {
			return err
		}
		if err := a.requireNotDirect("join it"); err != nil {
			return err
		}
		switch {
		case a.me.Joined():
			m = a.me
			return nil
		case a.me != nil:
			m, err = s.acceptInvite(tx, a, &out)
			return err
		}
		if err := a.requireOpen("join it"); err != nil {
			return err
		}
		var created bool
		m, created, err = insertMember(tx, channelID, v.UserID, models.RoleMember)
		if err != nil || !created {
			return err
		}
		a.ch.MembersCount++
		out.add(channelTopic(channelID), &event{Kind: evMemberJoined, Member: m})
		out.add(userTopic(v.UserID), &event{Kind: evMyChannel, ChannelEvent: ChannelJoined, Channel: a.ch})
		return s.systemMessage(tx, &out, channelID, memberEvent(models.SystemMemberJoined, v.UserID, v.UserID))
	})
	if err != nil {
		return nil, internal("join channel", err)
	}
	s.flush(ctx, out)
	return m, nil
}

// newMember returns a new membership row with READ_WRITE access.
func newMember(channelID, userID string, role models.MemberRole, status models.MemberStatus, t time.Time) *models.Member {
	return &models.Member{
		ID: newID(), ChannelID: channelID, UserID: userID, Role: role, Status: status, Access: models.AccessReadWrite,
		NotificationLevel: models.LevelDefault,
		JoinedAt:          t, UpdatedAt: t,
	}
}

// insertMember adds a JOINED membership and counts it; created is false
// when a membership of the user (joined or invited) exists, also when a
// concurrent writer just added it, and that one is returned.
func insertMember(tx *gorm.DB, channelID, userID string, role models.MemberRole) (m *models.Member, created bool, err error) {
	return insertMembership(tx, newMember(channelID, userID, role, models.MemberJoined, now()))
}

// insertMembership inserts m, counting it when it is JOINED, with its
// unread counters counted from the messages (a user who comes back may
// have messages and mentions in the channel already); created is
// false, and the existing membership is returned, when the user already
// has one in the channel.
func insertMembership(tx *gorm.DB, m *models.Member) (*models.Member, bool, error) {
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(m)
	if res.Error != nil {
		return nil, false, res.Error
	}
	if res.RowsAffected == 0 {
		existing, err := findMember(tx, m.ChannelID, m.UserID)
		return existing, false, err
	}
	if err := db.RecountUnread(tx, []string{m.ID}); err != nil {
		return nil, false, err
	}
	if !m.Joined() {
		return m, true, nil
	}
	return m, true, addMembersCount(tx, m.ChannelID, 1)
}

// addMembersCount adds n (which may be negative) to a channel's count of
// joined members.
func addMembersCount(tx *gorm.DB, channelID string, n int) error {
	return tx.Model(&models.Channel{}).Where("id = ?", channelID).
		UpdateColumn("members_count", gorm.Expr("members_count + ?", n)).Error
}

// LeaveChannel removes the caller from a channel and returns the removed
// membership's id. NOT_FOUND when the caller is not a member.
func (s *Service) LeaveChannel(ctx context.Context, channelID string) (string, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return "", err
	}
	return s.RemoveMember(ctx, channelID, v.Identity)
}

// AddMember adds identity (created when unknown) to a channel with role.
// ADMIN or OWNER; only the OWNER grants ADMIN or OWNER. CONFLICT when the
// user is already a member, also when a concurrent call just made them one;
// the call that gets CONFLICT publishes nothing.
func (s *Service) AddMember(ctx context.Context, channelID, identity string, role models.MemberRole) (*models.Member, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(identity); err != nil {
		return nil, err
	}
	if rank(role) == 0 {
		return nil, apperr.New(apperr.BadUserInput, "role must be OWNER, ADMIN or MEMBER")
	}
	var (
		m   *models.Member
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, channelID)
		if err != nil {
			return err
		}
		if err := a.requireGrant("add members", role); err != nil {
			return err
		}
		if err := a.requireNotDirect("add members"); err != nil {
			return err
		}
		if err := a.requireOpen("add members"); err != nil {
			return err
		}
		u, err := ensureUser(tx, identity, nil)
		if err != nil {
			return err
		}
		var created bool
		m, created, err = insertMember(tx, channelID, u.ID, role)
		if err != nil {
			return err
		}
		if !created {
			// Also when a concurrent call added them first: only one
			// of two racing calls succeeds and publishes.
			return apperr.New(apperr.Conflict, "%q is already a member of this channel, or invited to it", identity)
		}
		a.ch.MembersCount++
		out.add(channelTopic(channelID), &event{Kind: evMemberJoined, Member: m})
		out.add(userTopic(u.ID), &event{Kind: evMyChannel, ChannelEvent: ChannelAdded, Channel: a.ch})
		return s.systemMessage(tx, &out, channelID, memberEvent(models.SystemMemberAdded, v.UserID, u.ID))
	})
	if err != nil {
		return nil, internal("add member", err)
	}
	s.flush(ctx, out)
	return m, nil
}

// RemoveMember removes identity from a channel and returns the removed
// membership's id. A member may always remove themself; otherwise ADMIN or
// OWNER, acting only on members of a lower role. When the OWNER leaves, the
// longest-standing ADMIN, or else MEMBER, becomes OWNER. Removing an
// invitation (the invitee declining, or a moderator taking it back) tells
// only the invitee, through channelEvents. FORBIDDEN in a DIRECT channel.
func (s *Service) RemoveMember(ctx context.Context, channelID, identity string) (string, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return "", err
	}
	var (
		removed string
		out     outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, channelID)
		if err != nil {
			return err
		}
		if err := a.requireNotDirect("leave it or remove members"); err != nil {
			return err
		}
		target, err := s.memberByIdentity(tx, channelID, identity)
		if err != nil {
			return err
		}
		if target.UserID != v.UserID {
			if err := a.requireRole("remove members", models.RoleOwner, models.RoleAdmin); err != nil {
				return err
			}
			if rank(target.Role) >= rank(a.role()) {
				return apperr.New(apperr.Forbidden, "a %s cannot remove a %s", a.role(), target.Role)
			}
		}
		if err := lockChannels(tx, channelID); err != nil {
			return err
		}
		res := tx.Delete(&models.Member{}, "id = ?", target.ID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return apperr.New(apperr.NotFound, "%q is not a member of this channel", identity)
		}
		removed = target.ID
		if !target.Joined() {
			out.add(userTopic(target.UserID), &event{Kind: evMyChannel, ChannelEvent: ChannelLeft, Channel: a.ch})
			return nil
		}
		if err := addMembersCount(tx, channelID, -1); err != nil {
			return err
		}
		a.ch.MembersCount--
		out.add(channelTopic(channelID), &event{Kind: evMemberLeft, Member: target})
		out.add(userTopic(target.UserID), &event{Kind: evMyChannel, ChannelEvent: ChannelLeft, Channel: a.ch})
		kind := models.SystemMemberRemoved
		if target.UserID == v.UserID {
			kind = models.SystemMemberLeft
		}
		if err := s.systemMessage(tx, &out, channelID, memberEvent(kind, v.UserID, target.UserID)); err != nil {
			return err
		}
		if target.Role == models.RoleOwner {
			successor, err := promoteSuccessor(tx, channelID)
			if err != nil || successor == nil {
				return err
			}
			out.add(channelTopic(channelID), &event{Kind: evMemberUpdated, Member: successor, Reasons: []string{ReasonRole}})
		}
		return nil
	})
	if err != nil {
		return "", internal("remove member", err)
	}
	s.flush(ctx, out)
	return removed, nil
}

// memberByIdentity is NOT_FOUND when identity is not a member of channel.
func (s *Service) memberByIdentity(tx *gorm.DB, channelID, identity string) (*models.Member, error) {
	var m models.Member
	err := tx.Joins("JOIN users ON users.id = members.user_id").
		Where("members.channel_id = ? AND users.identity = ?", channelID, identity).Take(&m).Error
	if isNotFound(err) {
		return nil, apperr.New(apperr.NotFound, "%q is not a member of this channel", identity)
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// promoteSuccessor makes the longest-standing ADMIN, or else MEMBER, the
// OWNER of a channel whose OWNER left, and returns them (nil when the
// channel is now empty).
func promoteSuccessor(tx *gorm.DB, channelID string) (*models.Member, error) {
	var next models.Member
	err := tx.Where("channel_id = ? AND status = ?", channelID, models.MemberJoined).
		Order(clause.Expr{SQL: "CASE role WHEN ? THEN 0 ELSE 1 END, joined_at, id", Vars: []any{models.RoleAdmin}}).
		Take(&next).Error
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	next.Role, next.UpdatedAt = models.RoleOwner, now()
	err = tx.Model(&models.Member{}).Where("id = ?", next.ID).
		UpdateColumns(map[string]any{"role": next.Role, "updated_at": next.UpdatedAt}).Error
	return &next, err
}

// MarkRead moves the caller's read horizon forward to index; it never moves
// back. BAD_USER_INPUT when index is not a message of the channel.
func (s *Service) MarkRead(ctx context.Context, channelID string, index int) (*models.Member, error) {
	return s.moveReadHorizon(ctx, channelID, &index, true)
}

// Members lists a channel's members with status (JOINED, or INVITED for
// the pending invitations), in the order they were added. Members only.
func (s *Service) Members(ctx context.Context, channelID string, status models.MemberStatus, args PageArgs) (*Page[*models.Member], error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if args.Last != nil || args.Before != nil {
		return nil, apperr.New(apperr.BadUserInput, "members pages forward only: use first and after")
	}
	n, _, err := s.pageSize(args, false)
	if err != nil {
		return nil, err
	}
	after, err := decodeCursor(args.After, "mb")
	if err != nil {
		return nil, err
	}
	q := s.store.DB(ctx)
	a, err := loadAccess(q, v, channelID)
	if err != nil {
		return nil, internal("list members", err)
	}
	if err := a.requireMember(); err != nil {
		return nil, err
	}
	if status != models.MemberJoined && status != models.MemberInvited {
		return nil, apperr.New(apperr.BadUserInput, "status must be JOINED or INVITED")
	}
	q = q.Where("channel_id = ? AND status = ?", channelID, status)
	if after != nil {
		q = q.Where("id > ?", after.ID)
	}
	var rows []*models.Member
	if err := q.Order("id").Limit(n + 1).Find(&rows).Error; err != nil {
		return nil, internal("list members", err)
	}
	page := &Page[*models.Member]{HasPrevious: after != nil}
	if len(rows) > n {
		rows, page.HasNext = rows[:n], true
	}
	page.Items = rows
	for _, m := range rows {
		page.Cursors = append(page.Cursors, encodeCursor(cursor{Kind: "mb", ID: m.ID}))
	}
	return page, nil
}

// myMemberships loads the caller's memberships of channels for a loader:
// one result per channel id, nil where the caller is not a member, and the
// unread counts of those they joined (see unreadSQL), in one query.
func (s *Service) myMemberships(ctx context.Context, channelIDs []string) ([]*models.Member, map[string]Unread, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, nil, err
	}
	var rows []struct {
		models.Member
		UnreadMessages int
		UnreadMentions int
	}
	err = s.store.DB(ctx).Table("members AS m").Joins("JOIN channels c ON c.id = m.channel_id").
		Select(db.Columns(s.store.DB(ctx), &models.Member{}, "m")+", "+unreadSQL("c")+" AS unread_messages, "+unreadMentionsSQL+" AS unread_mentions").
		Where("m.user_id = ? AND m.channel_id IN ?", v.UserID, channelIDs).Scan(&rows).Error
	if err != nil {
		return nil, nil, internal("load memberships", err)
	}
	members := make([]*models.Member, len(rows))
	unread := make(map[string]Unread, len(rows))
	for i := range rows {
		members[i] = &rows[i].Member
		if rows[i].Member.Joined() {
			unread[rows[i].ChannelID] = Unread{Messages: rows[i].UnreadMessages, Mentions: rows[i].UnreadMentions}
		}
	}
	return byID(channelIDs, members, func(m *models.Member) string { return m.ChannelID }), unread, nil
}
