package chat

import (
	"context"

	"github.com/parleychat/parley/models"
)

// Connected records one more live connection of the caller; their first,
// on any node, makes them online and publishes userUpdated(ONLINE). The
// WebSocket transport calls it once a connection is authenticated.
func (s *Service) Connected(ctx context.Context) error {
	return s.presenceChange(ctx, true)
}

// Disconnected records one connection fewer; the caller's last makes them
// offline and publishes userUpdated(ONLINE).
func (s *Service) Disconnected(ctx context.Context) {
	if err := s.presenceChange(context.WithoutCancel(ctx), false); err != nil {
		s.log.ErrorContext(ctx, "record disconnect", "err", err)
	}
}

func (s *Service) presenceChange(ctx context.Context, connect bool) error {
	if s.presence == nil {
		return nil
	}
	v, err := s.viewer(ctx)
	if err != nil {
		return err
	}
	var flipped bool
	if connect {
		flipped, err = s.presence.Connect(ctx, v.UserID)
	} else {
		flipped, err = s.presence.Disconnect(ctx, v.UserID)
	}
	if err != nil || !flipped {
		return internal("record presence", err)
	}
	var u models.User
	if err := s.store.DB(ctx).Take(&u, "id = ?", v.UserID).Error; err != nil {
		return internal("record presence", err)
	}
	s.publish(ctx, profileTopic(u.ID), &event{Kind: evUserUpdated, User: &u, Reasons: []string{ReasonOnline}})
	return nil
}

// presenceLapsed publishes userUpdated(ONLINE) for a user who went offline
// because the node holding their last connections stopped without saying
// so (see presence.Tracker.Watch).
func (s *Service) presenceLapsed(userID string) {
	ctx := context.Background()
	var u models.User
	err := s.store.DB(ctx).Take(&u, "id = ?", userID).Error
	switch {
	case isNotFound(err):
		// Not a user of this database: another deployment shares the
		// Redis server.
		s.log.DebugContext(ctx, "lapsed presence of an unknown user", "user", userID)
	case err != nil:
		s.log.ErrorContext(ctx, "publish lapsed presence", "user", userID, "err", err)
	default:
		s.publish(ctx, profileTopic(u.ID), &event{Kind: evUserUpdated, User: &u, Reasons: []string{ReasonOnline}})
	}
}

// Online reports whether u holds at least one live connection on any node.
func (s *Service) Online(ctx context.Context, u *models.User) (bool, error) {
	if s.presence == nil {
		return false, nil
	}
	return s.loaders(ctx).onlineLoader().Load(ctx, u.ID)
}

// onlineByIDs answers the online loader.
func (s *Service) onlineByIDs(ctx context.Context, ids []string) ([]bool, []error) {
	online, err := s.presence.Online(ctx, ids)
	if err != nil {
		return nil, []error{internal("read presence", err)}
	}
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = online[id]
	}
	return out, nil
}
