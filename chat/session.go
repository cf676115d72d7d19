package chat

import (
	"context"
	"time"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/models"
)

// Session is a caller's authentication as their access token states it.
type Session struct {
	Identity  string
	ExpiresAt time.Time
	// Grants are the token's channel grants sorted by key, or nil when
	// the token may use every channel.
	Grants []Grant
}

// Grant is one entry of a token's channels claim.
type Grant struct {
	// Key is a channel id or uniqueName.
	Key string
	// Write is true for "write" and false for "read".
	Write bool
}

// sessionOf describes the token behind p.
func sessionOf(p auth.Principal) *Session {
	out := &Session{Identity: p.Identity, ExpiresAt: p.ExpiresAt}
	if p.Grants != nil {
		out.Grants = []Grant{}
		for _, key := range p.Grants.Keys() {
			a, _ := p.Grants.Access(key)
			out.Grants = append(out.Grants, Grant{Key: key, Write: a == auth.Write})
		}
	}
	return out
}

// Session returns the caller's session. UNAUTHENTICATED without a token.
func (s *Service) Session(ctx context.Context) (*Session, error) {
	if _, err := s.viewer(ctx); err != nil {
		return nil, err
	}
	p, _ := auth.FromContext(ctx)
	return sessionOf(p), nil
}

// RefreshSession checks token, a fresh token for the caller, and returns its
// session. UNAUTHENTICATED when the token does not verify, FORBIDDEN when it
// names another identity. Over HTTP it changes nothing; sent over a
// WebSocket, it replaces that connection's token (see hub.Renewer), so its
// subscriptions go on past the old expiry, and sessionEvents tells the
// connection REFRESHED.
func (s *Service) RefreshSession(ctx context.Context, token string) (*Session, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if s.verifier == nil {
		return nil, internal("refresh session", errNoVerifier)
	}
	p, err := s.verifier.Verify(token)
	if err != nil {
		return nil, err
	}
	if p.Identity != v.Identity {
		return nil, apperr.New(apperr.Forbidden, "the token is for another identity; open a new connection to change users")
	}
	s.renewSession(ctx, p)
	return sessionOf(p), nil
}

// GrantChannel returns the channel that a grant's key names, by id or else
// by uniqueName, or nil when there is none the caller may see.
func (s *Service) GrantChannel(ctx context.Context, key string) (*models.Channel, error) {
	return s.loaders(ctx).grantChannelLoader().Load(ctx, key)
}

// grantChannels answers the grant channel loader: one query for the
// channels that the keys name, one for the caller's memberships of them.
func (s *Service) grantChannels(ctx context.Context, keys []string) ([]*models.Channel, []error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, []error{err}
	}
	q := s.store.DB(ctx)
	var rows []*models.Channel
	if err := q.Where("id IN ? OR unique_name IN ?", keys, keys).Find(&rows).Error; err != nil {
		return nil, []error{internal("load granted channels", err)}
	}
	ids := make([]string, len(rows))
	for i, c := range rows {
		ids[i] = c.ID
	}
	var mine []*models.Member
	if err := q.Where("user_id = ? AND channel_id IN ?", v.UserID, ids).Find(&mine).Error; err != nil {
		return nil, []error{internal("load granted channels", err)}
	}
	memberOf := byID(ids, mine, func(m *models.Member) string { return m.ChannelID })
	byKey := map[string]*models.Channel{}
	for i, c := range rows {
		if _, err := accessTo(v, c, memberOf[i]); err != nil {
			continue
		}
		byKey[c.ID] = c
		if c.UniqueName != nil && byKey[*c.UniqueName] == nil {
			byKey[*c.UniqueName] = c
		}
	}
	out := make([]*models.Channel, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out, nil
}
