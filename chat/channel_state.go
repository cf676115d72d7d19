package chat

import (
	"context"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// SetChannelState sets a channel's state. ADMIN or OWNER; NOT_FOUND as for
// any channel the caller may not see; BAD_USER_INPUT for an unknown state.
// A CLOSED channel takes no messages, edits, joins or new members; reading
// and markRead go on. Setting the state a channel already has changes
// nothing and publishes nothing.
func (s *Service) SetChannelState(ctx context.Context, id string, state models.ChannelState) (*models.Channel, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	switch state {
	case models.StateActive, models.StateInactive, models.StateClosed:
	default:
		return nil, apperr.New(apperr.BadUserInput, "state must be ACTIVE, INACTIVE or CLOSED")
	}
	var (
		ch  *models.Channel
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, id)
		if err != nil {
			return err
		}
		if err := a.requireRole("change the channel's state", models.RoleOwner, models.RoleAdmin); err != nil {
			return err
		}
		var changed bool
		ch, changed, err = setChannelState(tx, id, state)
		if err != nil || !changed {
			return err
		}
		out.add(channelTopic(id), &event{Kind: evChannelUpdated, Channel: ch, Reasons: []string{ReasonState}})
		after, err := s.systemMessageChannel(tx, &out, id, models.SystemEvent{Kind: models.SystemStateChanged, ActorID: &v.UserID, State: &state})
		if after != nil {
			*ch = *after // the event shows the channel with its system message
		}
		return err
	})
	if err != nil {
		return nil, internal("set channel state", err)
	}
	s.flush(ctx, out)
	return ch, nil
}

// setChannelState sets channel id's state through tx and returns the row as
// it is then, with whether the state changed.
func setChannelState(tx *gorm.DB, id string, state models.ChannelState) (*models.Channel, bool, error) {
	res := tx.Model(&models.Channel{}).Where("id = ? AND state <> ?", id, state).
		UpdateColumns(map[string]any{"state": state, "updated_at": now()})
	if res.Error != nil {
		return nil, false, res.Error
	}
	var ch models.Channel
	if err := tx.Take(&ch, "id = ?", id).Error; err != nil {
		return nil, false, err
	}
	return &ch, res.RowsAffected == 1, nil
}
