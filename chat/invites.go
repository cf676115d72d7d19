package chat

import (
	"context"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// ChannelInvited is the channel event of a user invited to a channel.
const ChannelInvited ChannelEventType = "INVITED"

// InviteMember invites identity (created when unknown) to a channel with
// role, as Twilio's invites: the invitee sees the channel's metadata, also
// of a PRIVATE channel, but not its messages or members until they accept,
// and channelEvents tells them with INVITED. ADMIN or OWNER; only the OWNER
// invites as ADMIN or OWNER. CONFLICT when the user is already a member or
// invited, also when a concurrent call just made them one (that call
// publishes nothing); FORBIDDEN in a DIRECT or CLOSED channel.
func (s *Service) InviteMember(ctx context.Context, channelID, identity string, role models.MemberRole) (*models.Member, error) {
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
		if err := a.requireGrant("invite members", role); err != nil {
			return err
		}
		if err := a.requireNotDirect("invite members"); err != nil {
			return err
		}
		if err := a.requireOpen("invite members"); err != nil {
			return err
		}
		u, err := ensureUser(tx, identity, nil)
		if err != nil {
			return err
		}
		var created bool
		m, created, err = insertMembership(tx, newMember(channelID, u.ID, role, models.MemberInvited, now()))
		if err != nil {
			return err
		}
		if !created {
			return apperr.New(apperr.Conflict, "%q is already a member of this channel, or invited to it", identity)
		}
		out.add(userTopic(u.ID), &event{Kind: evMyChannel, ChannelEvent: ChannelInvited, Channel: a.ch})
		return s.systemMessage(tx, &out, channelID, memberEvent(models.SystemMemberInvited, v.UserID, u.ID))
	})
	if err != nil {
		return nil, internal("invite member", err)
	}
	s.flush(ctx, out)
	return m, nil
}

// AcceptInvite makes the caller's invitation to a channel a JOINED
// membership, with the invited role. Accepting twice returns the
// membership and publishes nothing. NOT_FOUND without an invitation;
// FORBIDDEN in a CLOSED channel.
func (s *Service) AcceptInvite(ctx context.Context, channelID string) (*models.Member, error) {
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
		switch {
		case err != nil:
			return err
		case a.me == nil:
			return errNoInvitation()
		case a.me.Joined():
			m = a.me
			return nil
		}
		m, err = s.acceptInvite(tx, a, &out)
		return err
	})
	if err != nil {
		return nil, internal("accept invite", err)
	}
	s.flush(ctx, out)
	return m, nil
}

// acceptInvite turns the caller's invitation a.me into a JOINED membership
// through tx, counts it and adds its events to out: memberJoined and
// memberUpdated(STATUS) for the channel, JOINED for the caller, and the
// MEMBER_JOINED system message. When a
// concurrent call accepted first it returns the membership and adds no
// event. FORBIDDEN in a CLOSED channel.
func (s *Service) acceptInvite(tx *gorm.DB, a *access, out *outbox) (*models.Member, error) {
	if err := a.requireOpen("join it"); err != nil {
		return nil, err
	}
	if err := lockChannels(tx, a.me.ChannelID); err != nil {
		return nil, err
	}
	t := now()
	res := tx.Model(&models.Member{}).Where("id = ? AND status = ?", a.me.ID, models.MemberInvited).
		UpdateColumns(map[string]any{"status": models.MemberJoined, "joined_at": t, "updated_at": t})
	if res.Error != nil {
		return nil, res.Error
	}
	var m models.Member
	if err := tx.Take(&m, "id = ?", a.me.ID).Error; err != nil {
		return nil, err
	}
	if res.RowsAffected == 0 {
		return &m, nil
	}
	if err := addMembersCount(tx, m.ChannelID, 1); err != nil {
		return nil, err
	}
	a.ch.MembersCount++
	out.add(channelTopic(m.ChannelID), &event{Kind: evMemberJoined, Member: &m})
	out.add(channelTopic(m.ChannelID), &event{Kind: evMemberUpdated, Member: &m, Channel: a.ch, Reasons: []string{ReasonStatus}})
	out.add(userTopic(m.UserID), &event{Kind: evMyChannel, ChannelEvent: ChannelJoined, Channel: a.ch})
	return &m, s.systemMessage(tx, out, m.ChannelID, memberEvent(models.SystemMemberJoined, m.UserID, m.UserID))
}

// DeclineInvite removes the caller's invitation to a channel and returns
// its id; channelEvents tells the caller with LEFT. NOT_FOUND without a
// pending invitation (a joined member leaves with leaveChannel).
func (s *Service) DeclineInvite(ctx context.Context, channelID string) (string, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return "", err
	}
	var out outbox
	var id string
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, channelID)
		if err != nil {
			return err
		}
		if a.me == nil || a.me.Joined() {
			return errNoInvitation()
		}
		res := tx.Where("id = ? AND status = ?", a.me.ID, models.MemberInvited).Delete(&models.Member{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errNoInvitation()
		}
		id = a.me.ID
		out.add(userTopic(v.UserID), &event{Kind: evMyChannel, ChannelEvent: ChannelLeft, Channel: a.ch})
		return nil
	})
	if err != nil {
		return "", internal("decline invite", err)
	}
	s.flush(ctx, out)
	return id, nil
}

func errNoInvitation() error {
	return apperr.New(apperr.NotFound, "you have no pending invitation to this channel")
}
