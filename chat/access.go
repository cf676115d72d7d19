package chat

import (
	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/models"
)

// access is a channel as one caller sees it: the row, the caller's
// membership (nil when they are not a member) and what the caller's token
// grants on it. An admin (see auth.Principal.Admin) acts as the channel's
// OWNER, member or not: the require checks pass for them as for a joined
// OWNER with READ_WRITE access, while me stays their real membership.
type access struct {
	ch    *models.Channel
	me    *models.Member
	grant auth.Access
	admin bool
}

// errChannelNotFound is the answer for a channel that does not exist and for
// a private channel the caller is not in: the two must look the same.
func errChannelNotFound() error { return apperr.New(apperr.NotFound, "channel not found") }

// loadAccess loads a channel and the caller's membership through q (the
// database or a transaction). NOT_FOUND when the channel does not exist, is
// private and the caller is not a member, or is outside the caller's token
// grants.
func loadAccess(q *gorm.DB, v viewer, channelID string) (*access, error) {
	me, err := findMember(q, channelID, v.UserID)
	if err != nil {
		return nil, err
	}
	var ch models.Channel
	if err := q.Take(&ch, "id = ?", channelID).Error; err != nil {
		if isNotFound(err) {
			return nil, errChannelNotFound()
		}
		return nil, err
	}
	return accessTo(v, &ch, me)
}

// accessTo is the caller's access to a loaded channel, given their
// membership (nil for none); NOT_FOUND as loadAccess.
func accessTo(v viewer, ch *models.Channel, me *models.Member) (*access, error) {
	if me == nil && ch.Type != models.ChannelPublic && !v.admin {
		return nil, errChannelNotFound()
	}
	grant, ok := v.grant(ch)
	if !ok {
		return nil, errChannelNotFound()
	}
	return &access{ch: ch, me: me, grant: grant, admin: v.admin}, nil
}

// grant is what the caller's token allows on ch, and false when the token
// is limited to other channels. A channel named in the grants both by id
// and by uniqueName gets the stronger of the two.
func (v viewer) grant(ch *models.Channel) (auth.Access, bool) {
	if v.grants == nil {
		return auth.Write, true
	}
	a, ok := v.grants.Access(ch.ID)
	if ch.UniqueName != nil {
		if b, found := v.grants.Access(*ch.UniqueName); found && (!ok || b == auth.Write) {
			a, ok = b, true
		}
	}
	return a, ok
}

// mayCreate is FORBIDDEN when the caller's token is limited by grants that
// do not name uniqueName: it could not use the channel it would create.
func (v viewer) mayCreate(uniqueName *string) error {
	if v.grants == nil {
		return nil
	}
	if uniqueName != nil {
		if _, ok := v.grants.Access(*uniqueName); ok {
			return nil
		}
	}
	return apperr.New(apperr.Forbidden, "this token may use only the channels its channels claim names; name the new channel's uniqueName there")
}

// sees reports whether the caller's token grants may use ch.
func (v viewer) sees(ch *models.Channel) bool {
	_, ok := v.grant(ch)
	return ok
}

// scopeChannels limits a query over channels to those the caller's token
// grants name; it changes nothing for an unrestricted token.
func (v viewer) scopeChannels(q *gorm.DB) *gorm.DB {
	if v.grants == nil {
		return q
	}
	keys := v.grants.Keys()
	return q.Where("(channels.id IN ? OR channels.unique_name IN ?)", keys, keys)
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

// requireMember is FORBIDDEN for a caller who can see the channel but has
// not joined it (also while only invited): only members read history, list
// members and post.
func (a *access) requireMember() error {
	if a.admin {
		return nil
	}
	return a.requireOwnMembership()
}

// requireOwnMembership is requireMember for what only a real membership
// can do (markRead, a notification level), also for an admin.
func (a *access) requireOwnMembership() error {
	if a.me == nil {
		return apperr.New(apperr.Forbidden, "only members of this channel may do that; join it first")
	}
	if !a.me.Joined() {
		return apperr.New(apperr.Forbidden, "you are invited to this channel; accept the invitation first")
	}
	return nil
}

// requireWrite is FORBIDDEN unless the caller is a member who may write
// messages (sending, editing and typing): READ_WRITE access, a token that
// grants "write", and a channel that is not CLOSED.
func (a *access) requireWrite() error {
	if err := a.requireMember(); err != nil {
		return err
	}
	if err := a.requireOpen("write in it"); err != nil {
		return err
	}
	if a.grant != auth.Write {
		return apperr.New(apperr.Forbidden, "this token may only read this channel")
	}
	if !a.admin && a.me.Access != models.AccessReadWrite {
		return apperr.New(apperr.Forbidden, "you have READ access in this channel")
	}
	return nil
}

// role is the caller's role: OWNER for an admin, "" for a non-member.
func (a *access) role() models.MemberRole {
	switch {
	case a.admin:
		return models.RoleOwner
	case a.me == nil:
		return ""
	default:
		return a.me.Role
	}
}

// historyStart is the first index the caller may see: their membership's,
// or 0 for an admin who has not joined.
func (a *access) historyStart() int {
	if a.me.Joined() {
		return a.me.HistoryStart
	}
	return 0
}

// requireOpen is FORBIDDEN, naming the state, when the channel is CLOSED.
func (a *access) requireOpen(what string) error {
	if a.ch.State == models.StateClosed {
		return errClosed(what)
	}
	return nil
}

// errClosed is the answer to what is refused in a CLOSED channel.
func errClosed(what string) error {
	return apperr.New(apperr.Forbidden, "the channel is CLOSED: no one may %s", what)
}

// requireNotDirect is FORBIDDEN for a DIRECT channel, whose members never
// change.
func (a *access) requireNotDirect(what string) error {
	if a.ch.Type == models.ChannelDirect {
		return apperr.New(apperr.Forbidden, "a DIRECT channel has exactly its two members: no one may %s", what)
	}
	return nil
}

// requireRole is FORBIDDEN unless the caller is a member with one of roles.
func (a *access) requireRole(what string, roles ...models.MemberRole) error {
	if err := a.requireMember(); err != nil {
		return err
	}
	for _, r := range roles {
		if a.role() == r {
			return nil
		}
	}
	return apperr.New(apperr.Forbidden, "only %s may %s", roleList(roles), what)
}

// requireGrant is FORBIDDEN unless the caller may add someone with role:
// an ADMIN or the OWNER, and only the OWNER for ADMIN or OWNER.
func (a *access) requireGrant(what string, role models.MemberRole) error {
	if err := a.requireRole(what, models.RoleOwner, models.RoleAdmin); err != nil {
		return err
	}
	if role != models.RoleMember {
		return a.requireRole("grant "+string(role), models.RoleOwner)
	}
	return nil
}

// isModerator reports whether the caller is a joined ADMIN or OWNER.
func (a *access) isModerator() bool {
	return a.admin || (a.me.Joined() && (a.me.Role == models.RoleOwner || a.me.Role == models.RoleAdmin))
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
