package chat

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/mergepatch"
	"github.com/parleychat/parley/models"
)

// attributesChange is how a patch changes an entity's attributes: replaced
// whole (Attributes) or merged with a JSON merge patch (Patch), never both.
type attributesChange struct {
	Attributes Optional[models.JSON]
	Patch      Optional[models.JSON]
}

// checkAttributesChange validates a change before anything is read: BAD_USER_INPUT for
// both forms at once, or a value over the attributes limit.
func (s *Service) checkAttributesChange(c attributesChange) error {
	if c.Attributes.Set && c.Patch.Set {
		return apperr.New(apperr.BadUserInput, "pass attributes or attributesPatch, not both")
	}
	if err := s.checkAttributes(c.Attributes.Value); err != nil {
		return err
	}
	return s.checkAttributes(c.Patch.Value)
}

// applyAttributesChange returns the attributes after the change, given the current ones,
// and whether it changes anything at all. BAD_USER_INPUT when a merged
// result is over the limit. An explicit null patch clears the attributes,
// as RFC 7396 says.
func (s *Service) applyAttributesChange(current models.JSON, c attributesChange) (models.JSON, bool, error) {
	switch {
	case c.Attributes.Set:
		return c.Attributes.Value, true, nil
	case !c.Patch.Set:
		return current, false, nil
	}
	patch := []byte(c.Patch.Value)
	if patch == nil {
		patch = []byte("null")
	}
	merged, err := mergepatch.Apply(current, patch)
	if err != nil {
		return nil, false, err
	}
	if string(merged) == "null" {
		return nil, true, nil
	}
	if len(merged) > s.limits.MaxAttributesBytes {
		return nil, false, apperr.New(apperr.BadUserInput, "attributes would be %d bytes encoded after attributesPatch; the limit is %d bytes", len(merged), s.limits.MaxAttributesBytes)
	}
	return models.JSON(merged), true, nil
}

// forUpdate makes q lock the rows it reads until the transaction ends, on
// PostgreSQL (only those of table, when given, in a join); SQLite has one
// writer at a time and no row locks.
func forUpdate(q *gorm.DB, table ...string) *gorm.DB {
	if q.Dialector.Name() == "sqlite" {
		return q
	}
	lock := clause.Locking{Strength: clause.LockingStrengthUpdate}
	if len(table) > 0 {
		lock.Table = clause.Table{Name: table[0]}
	}
	return q.Clauses(lock)
}
