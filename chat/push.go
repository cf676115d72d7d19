package chat

import (
	"context"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// maxPushTokenBytes caps a device token; FCM tokens are about 160 bytes and
// APNs tokens 64.
const maxPushTokenBytes = 512

// RegisterPush registers a device token for the caller's notifications. The
// same token twice is one registration; a token held by another user moves
// to the caller (the device changed hands). A user who gets their first
// registration, or loses their last to another, is announced with
// userUpdated(NOTIFIABLE).
func (s *Service) RegisterPush(ctx context.Context, provider models.PushProvider, token string) (*models.PushRegistration, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkPushToken(token); err != nil {
		return nil, err
	}
	var (
		reg models.PushRegistration
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		var holders []string
		err := tx.Model(&models.PushRegistration{}).Where("provider = ? AND token = ?", provider, token).Pluck("user_id", &holders).Error
		if err != nil {
			return err
		}
		had, err := hasRegistrations(tx, append(holders, v.UserID)...)
		if err != nil {
			return err
		}
		row := models.PushRegistration{ID: newID(), UserID: v.UserID, Provider: provider, Token: token, CreatedAt: now()}
		err = tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "provider"}, {Name: "token"}},
			DoUpdates: clause.AssignmentColumns([]string{"user_id"}),
		}).Create(&row).Error
		if err != nil {
			return err
		}
		if err := tx.Take(&reg, "provider = ? AND token = ?", provider, token).Error; err != nil {
			return err
		}
		return notifiableFlips(tx, &out, had)
	})
	if err != nil {
		return nil, internal("register push", err)
	}
	s.flush(ctx, out)
	return &reg, nil
}

// UnregisterPush removes one of the caller's registrations and returns its
// id, or nil when the caller had no such registration.
func (s *Service) UnregisterPush(ctx context.Context, provider models.PushProvider, token string) (*string, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	var (
		removed *string
		out     outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		var reg models.PushRegistration
		err := tx.Take(&reg, "provider = ? AND token = ? AND user_id = ?", provider, token, v.UserID).Error
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		removed = &reg.ID
		if err := tx.Delete(&reg).Error; err != nil {
			return err
		}
		return notifiableFlips(tx, &out, map[string]bool{v.UserID: true})
	})
	if err != nil {
		return nil, internal("unregister push", err)
	}
	s.flush(ctx, out)
	return removed, nil
}

// ClearPushRegistrations removes every registration of the caller and
// returns how many there were.
func (s *Service) ClearPushRegistrations(ctx context.Context) (int, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return 0, err
	}
	var (
		n   int64
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		res := tx.Delete(&models.PushRegistration{}, "user_id = ?", v.UserID)
		if res.Error != nil {
			return res.Error
		}
		n = res.RowsAffected
		if n == 0 {
			return nil
		}
		return notifiableFlips(tx, &out, map[string]bool{v.UserID: true})
	})
	if err != nil {
		return 0, internal("clear push registrations", err)
	}
	s.flush(ctx, out)
	return int(n), nil
}

// MyPushRegistrations lists the caller's registrations, oldest first.
func (s *Service) MyPushRegistrations(ctx context.Context) ([]*models.PushRegistration, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	var rows []*models.PushRegistration
	if err := s.store.DB(ctx).Where("user_id = ?", v.UserID).Order("id").Find(&rows).Error; err != nil {
		return nil, internal("list push registrations", err)
	}
	return rows, nil
}

func checkPushToken(token string) error {
	if strings.TrimSpace(token) == "" {
		return apperr.New(apperr.BadUserInput, "token must not be empty")
	}
	if len(token) > maxPushTokenBytes {
		return apperr.New(apperr.BadUserInput, "token is %d bytes; the limit is %d", len(token), maxPushTokenBytes)
	}
	return nil
}
