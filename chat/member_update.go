package chat

import (
	"context"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// MemberPatch is a change to a member. Role and Access are left as they
// are when nil.
type MemberPatch struct {
	Role        *models.MemberRole
	Access      *models.MemberAccess
	DisplayName Optional[*string]
	// Attributes replaces the member's attributes whole; AttributesPatch
	// merges a JSON merge patch (RFC 7396) into them. At most one may be
	// set.
	Attributes      Optional[models.JSON]
	AttributesPatch Optional[models.JSON]
}

// UpdateMember changes identity's membership of a channel (an invitation
// too) and publishes memberUpdated with what changed (ROLE, ACCESS,
// DISPLAY_NAME, ATTRIBUTES); a patch that changes nothing publishes
// nothing.
//
// A member changes their own displayName and attributes, never their own
// role or access. An ADMIN or the OWNER changes those of members of a
// strictly lower role, and their access; only the OWNER grants or takes
// ADMIN, and giving OWNER to a joined member hands ownership over: the old
// OWNER becomes ADMIN (two memberUpdated(ROLE) events). Roles never change
// in a DIRECT channel. FORBIDDEN otherwise; NOT_FOUND when identity has no
// membership; BAD_USER_INPUT for invalid values, and nothing is written.
func (s *Service) UpdateMember(ctx context.Context, channelID, identity string, p MemberPatch) (*models.Member, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkMemberPatch(p); err != nil {
		return nil, err
	}
	attrs := attributesChange{Attributes: p.Attributes, Patch: p.AttributesPatch}
	var (
		m   *models.Member
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, channelID)
		if err != nil {
			return err
		}
		if err := a.requireMember(); err != nil {
			return err
		}
		// A change of owner writes two memberships (see lockChannels).
		if err := lockChannels(tx, channelID); err != nil {
			return err
		}
		target, err := s.memberByIdentity(forUpdate(tx, "members"), channelID, identity)
		if err != nil {
			return err
		}
		roleChange := p.Role != nil && *p.Role != target.Role
		accessChange := p.Access != nil && *p.Access != target.Access
		if err := mayUpdateMember(a, target, roleChange, accessChange, p.Role); err != nil {
			return err
		}
		changes := map[string]any{}
		var reasons []string
		if roleChange {
			changes["role"], reasons = *p.Role, append(reasons, ReasonRole)
		}
		if accessChange {
			changes["access"], reasons = *p.Access, append(reasons, ReasonAccess)
		}
		if p.DisplayName.Set {
			changes["display_name"], reasons = p.DisplayName.Value, append(reasons, ReasonDisplayName)
		}
		value, changed, err := s.applyAttributesChange(target.Attributes, attrs)
		if err != nil {
			return err
		}
		if changed {
			changes["attributes"], reasons = value, append(reasons, ReasonAttributes)
		}
		if len(changes) == 0 {
			m = target
			return nil
		}
		if m, err = updateMemberRow(tx, target.ID, changes); err != nil {
			return err
		}
		out.add(channelTopic(channelID), &event{Kind: evMemberUpdated, Member: m, Reasons: reasons})
		if roleChange && *p.Role == models.RoleOwner {
			// The hand-over: the old OWNER steps down to ADMIN (when an
			// admin hands it over, the OWNER there was).
			var owners []string
			err := tx.Model(&models.Member{}).Where("channel_id = ? AND role = ? AND id <> ?", channelID, models.RoleOwner, target.ID).
				Order("id").Pluck("id", &owners).Error
			if err != nil {
				return err
			}
			for _, id := range owners {
				old, err := updateMemberRow(tx, id, map[string]any{"role": models.RoleAdmin})
				if err != nil {
					return err
				}
				out.add(channelTopic(channelID), &event{Kind: evMemberUpdated, Member: old, Reasons: []string{ReasonRole}})
			}
		}
		return nil
	})
	if err != nil {
		return nil, internal("update member", err)
	}
	s.flush(ctx, out)
	return m, nil
}

// checkMemberPatch validates a member patch before anything is read.
func (s *Service) checkMemberPatch(p MemberPatch) error {
	if p.Role != nil && rank(*p.Role) == 0 {
		return apperr.New(apperr.BadUserInput, "role must be OWNER, ADMIN or MEMBER")
	}
	if p.Access != nil && *p.Access != models.AccessRead && *p.Access != models.AccessReadWrite {
		return apperr.New(apperr.BadUserInput, "access must be READ or READ_WRITE")
	}
	if err := s.checkName("displayName", p.DisplayName.Value); err != nil {
		return err
	}
	return s.checkAttributesChange(attributesChange{Attributes: p.Attributes, Patch: p.AttributesPatch})
}

// mayUpdateMember is FORBIDDEN unless the caller (a, joined) may make the
// changes to target: see UpdateMember.
func mayUpdateMember(a *access, target *models.Member, roleChange, accessChange bool, role *models.MemberRole) error {
	if a.me != nil && target.UserID == a.me.UserID {
		switch {
		case roleChange:
			return apperr.New(apperr.Forbidden, "you cannot change your own role; an OWNER hands ownership over by giving OWNER to another member")
		case accessChange:
			return apperr.New(apperr.Forbidden, "you cannot change your own access")
		}
		return nil
	}
	if err := a.requireRole("change other members", models.RoleOwner, models.RoleAdmin); err != nil {
		return err
	}
	if rank(target.Role) >= rank(a.role()) {
		return apperr.New(apperr.Forbidden, "a %s cannot change a %s", a.role(), target.Role)
	}
	if !roleChange {
		return nil
	}
	if err := a.requireNotDirect("change roles"); err != nil {
		return err
	}
	if err := a.requireRole("grant or take ADMIN or OWNER", models.RoleOwner); err != nil {
		return err
	}
	if *role == models.RoleOwner && !target.Joined() {
		return apperr.New(apperr.Forbidden, "ownership goes to a joined member, not an invitation")
	}
	return nil
}

// updateMemberRow applies changes (and a new updated_at) to member id
// through tx and returns the row as it is then.
func updateMemberRow(tx *gorm.DB, id string, changes map[string]any) (*models.Member, error) {
	changes["updated_at"] = now()
	if err := tx.Model(&models.Member{}).Where("id = ?", id).UpdateColumns(changes).Error; err != nil {
		return nil, err
	}
	var m models.Member
	if err := tx.Take(&m, "id = ?", id).Error; err != nil {
		return nil, err
	}
	return &m, nil
}
