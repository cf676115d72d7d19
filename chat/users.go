package chat

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/models"
)

// UserPatch is a change to the caller's profile.
type UserPatch struct {
	FriendlyName Optional[*string]
	// Attributes replaces the attributes whole; AttributesPatch merges a
	// JSON merge patch (RFC 7396) into them. At most one may be set.
	Attributes      Optional[models.JSON]
	AttributesPatch Optional[models.JSON]
	PhotoURL        Optional[*string]
}

// Me returns the caller. UNAUTHENTICATED without a principal.
func (s *Service) Me(ctx context.Context) (*models.User, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	var u models.User
	if err := s.store.DB(ctx).Take(&u, "id = ?", v.UserID).Error; err != nil {
		return nil, internal("load me", err)
	}
	return &u, nil
}

// User returns the user with that identity, or nil when there is none.
// Users are visible to every authenticated caller.
func (s *Service) User(ctx context.Context, identity string) (*models.User, error) {
	if _, err := s.viewer(ctx); err != nil {
		return nil, err
	}
	var u models.User
	err := s.store.DB(ctx).Take(&u, "identity = ?", identity).Error
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("load user", err)
	}
	return &u, nil
}

// UpdateMe changes the caller's friendly name and attributes.
// BAD_USER_INPUT over the name or attributes limits (also once patched), or
// for attributes and attributesPatch at once, and nothing is written.
func (s *Service) UpdateMe(ctx context.Context, p UserPatch) (*models.User, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkName("friendlyName", p.FriendlyName.Value); err != nil {
		return nil, err
	}
	if err := checkPhotoURL(p.PhotoURL.Value); err != nil {
		return nil, err
	}
	attrs := attributesChange{Attributes: p.Attributes, Patch: p.AttributesPatch}
	if err := s.checkAttributesChange(attrs); err != nil {
		return nil, err
	}
	changes := map[string]any{}
	if p.FriendlyName.Set {
		changes["friendly_name"] = p.FriendlyName.Value
	}
	if p.PhotoURL.Set {
		changes["photo_url"] = p.PhotoURL.Value
	}
	var reasons []string
	if p.FriendlyName.Set {
		reasons = append(reasons, ReasonFriendlyName)
	}
	if attrs.Attributes.Set || attrs.Patch.Set {
		reasons = append(reasons, ReasonAttributes)
	}
	if p.PhotoURL.Set {
		reasons = append(reasons, ReasonPhoto)
	}
	var (
		u   models.User
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		var current models.User
		if attrs.Patch.Set {
			if err := forUpdate(tx).Select("attributes").Take(&current, "id = ?", v.UserID).Error; err != nil {
				return err
			}
		}
		value, changed, err := s.applyAttributesChange(current.Attributes, attrs)
		if err != nil {
			return err
		}
		if changed {
			changes["attributes"] = value
		}
		if len(changes) > 0 {
			changes["updated_at"] = now()
			if err := tx.Model(&models.User{}).Where("id = ?", v.UserID).UpdateColumns(changes).Error; err != nil {
				return err
			}
		}
		if err := tx.Take(&u, "id = ?", v.UserID).Error; err != nil {
			return err
		}
		if len(reasons) > 0 {
			out.add(profileTopic(u.ID), &event{Kind: evUserUpdated, User: &u, Reasons: reasons})
		}
		return nil
	})
	if err != nil {
		return nil, internal("update me", err)
	}
	s.flush(ctx, out)
	return &u, nil
}

// ensureUser returns the user with identity inside the write transaction tx,
// creating it with name when it does not exist. Safe against concurrent first
// sightings: the insert does nothing when another writer got there first.
func ensureUser(tx *gorm.DB, identity string, name *string) (*models.User, error) {
	t := now()
	u := models.User{ID: newID(), Identity: identity, FriendlyName: name, CreatedAt: t, UpdatedAt: t}
	err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "identity"}}, DoNothing: true}).Create(&u).Error
	if err != nil {
		return nil, err
	}
	var found models.User
	if err := tx.Take(&found, "identity = ?", identity).Error; err != nil {
		return nil, err
	}
	return &found, nil
}

// ensureUsers is ensureUser for many identities, without names, in two
// statements: one insert that skips existing users, one read. It returns the
// users by identity.
func ensureUsers(tx *gorm.DB, identities []string) (map[string]*models.User, error) {
	t := now()
	rows := make([]*models.User, len(identities))
	for i, identity := range identities {
		rows[i] = &models.User{ID: newID(), Identity: identity, CreatedAt: t, UpdatedAt: t}
	}
	err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "identity"}}, DoNothing: true}).Create(rows).Error
	if err != nil {
		return nil, err
	}
	var found []*models.User
	if err := tx.Where("identity IN ?", identities).Find(&found).Error; err != nil {
		return nil, err
	}
	out := make(map[string]*models.User, len(found))
	for _, u := range found {
		out[u.Identity] = u
	}
	return out, nil
}

// usersByIDs loads users for a loader: one result per id, nil where missing.
func (s *Service) usersByIDs(ctx context.Context, ids []string) ([]*models.User, []error) {
	var rows []*models.User
	if err := s.store.DB(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, []error{internal("load users", err)}
	}
	return byID(ids, rows, func(u *models.User) string { return u.ID }), nil
}

// byID orders rows like ids, with nil where a row is missing.
func byID[T any](ids []string, rows []*T, id func(*T) string) []*T {
	m := make(map[string]*T, len(rows))
	for _, r := range rows {
		m[id(r)] = r
	}
	out := make([]*T, len(ids))
	for i, k := range ids {
		out[i] = m[k]
	}
	return out
}
