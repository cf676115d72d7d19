package chat

import (
	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
	"gorm.io/gorm"
)

// access is a channel as one caller sees it: the row and the caller's
// membership (nil when they are not a member).
type access struct {
	ch *models.Channel
	me *models.Member
}

// errChannelNotFound is the answer for a channel that does not exist and for
// a private channel the caller is not in: the two must look the same.
func errChannelNotFound() error { return apperr.New(apperr.NotFound, "channel not found") }

// loadAccess loads a channel and the caller's membership through q (the
// database or a transaction). NOT_FOUND when the channel does not exist or is
// private and the caller is not a member.
func loadAccess(q *gorm.DB, v viewer, channelID string) (*access, error) {
	me, err := findMember(q, channelID, v.UserID)
	if err != nil {
		return nil, err
	}
	return loadChannelAccess(q, channelID, me)
}

// loadChannelAccess loads a channel through q for a caller whose membership
// me (nil for none) is already known; NOT_FOUND as loadAccess.
func loadChannelAccess(q *gorm.DB, channelID string, me *models.Member) (*access, error) {
	var ch models.Channel
	if err := q.Take(&ch, "id = ?", channelID).Error; err != nil {
		if isNotFound(err) {
			return nil, errChannelNotFound()
		}
		return nil, err
	}
	if me == nil && ch.Type != models.ChannelPublic {
		return nil, errChannelNotFound()
	}
	return &access{ch: &ch, me: me}, nil
}

// findMember returns the membership of user in channel, or nil.
func findMember(q *gorm.DB, channelID, userID string) (*models.Member, error) {
	var m models.Member
	err := q.Take(&m, "channel_id = ? AND user_id = ?", channelID, userID).Error
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// requireMember is FORBIDDEN for a caller who can see the channel but is not
// in it: only members read history, list members and post.
func (a *access) requireMember() error {
	if a.me == nil {
		return apperr.New(apperr.Forbidden, "only members of this channel may do that; join it first")
	}
	return nil
}

// requireRole is FORBIDDEN unless the caller is a member with one of roles.
func (a *access) requireRole(what string, roles ...models.MemberRole) error {
	if err := a.requireMember(); err != nil {
		return err
	}
	for _, r := range roles {
		if a.me.Role == r {
			return nil
		}
	}
	return apperr.New(apperr.Forbidden, "only %s may %s", roleList(roles), what)
}

// isModerator reports whether the caller is an ADMIN or the OWNER.
func (a *access) isModerator() bool {
	return a.me != nil && (a.me.Role == models.RoleOwner || a.me.Role == models.RoleAdmin)
}

// rank orders roles: a member may act on members of strictly lower rank.
func rank(r models.MemberRole) int {
	switch r {
	case models.RoleOwner:
		return 3
	case models.RoleAdmin:
		return 2
	case models.RoleMember:
		return 1
	default:
		return 0
	}
}

func roleList(roles []models.MemberRole) string {
	s := ""
	for i, r := range roles {
		switch {
		case i == 0:
		case i == len(roles)-1:
			s += " or "
		default:
			s += ", "
		}
		s += string(r)
	}
	return s
}
