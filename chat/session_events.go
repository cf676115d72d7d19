package chat

import (
	"context"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/hub"
)

// DefaultExpiryWarning is Options.ExpiryWarning's default.
const DefaultExpiryWarning = time.Minute

// SessionEventType says what happened to the caller's session.
type SessionEventType string

// The session event types.
const (
	// SessionExpiring comes Options.ExpiryWarning before the token
	// expires: time to refreshSession.
	SessionExpiring SessionEventType = "EXPIRING"
	// SessionRefreshed comes when refreshSession replaced the token of the
	// connection.
	SessionRefreshed SessionEventType = "REFRESHED"
)

// SessionEvent is a change to the caller's session: its token is about to
// expire, or was replaced; ExpiresAt is the token's expiry (the new one
// for REFRESHED).
type SessionEvent struct {
	Type      SessionEventType
	ExpiresAt time.Time
}

// sessionTopic carries the events of one realtime connection's session.
func sessionTopic(id string) string { return "s:" + id }

// expiringKey is the hub wake of the EXPIRING event.
const expiringKey = "expiring"

// SessionEvents streams the caller's session events: EXPIRING
// Options.ExpiryWarning before the token expires (at once when it is
// closer than that), and, over a WebSocket, REFRESHED when refreshSession
// replaces the connection's token, after which EXPIRING follows the new
// expiry. UNAUTHENTICATED without a token.
func (s *Service) SessionEvents(ctx context.Context, emit func(*SessionEvent)) error {
	if _, err := s.viewer(ctx); err != nil {
		return err
	}
	p, _ := auth.FromContext(ctx)
	expires := p.ExpiresAt
	var topics []string
	if p.Session != "" {
		topics = []string{sessionTopic(p.Session)}
	}
	warn := func() *hub.Wake { return &hub.Wake{At: expires.Add(-s.expiryWarning), Key: expiringKey} }
	return s.register(ctx, hub.Spec{
		Topics: topics,
		Wakes:  []hub.Wake{*warn()},
		Emit:   func(x any) { emit(x.(*SessionEvent)) },
		Pick: func(_ string, e any) hub.Verdict {
			switch ev := e.(type) {
			case hub.Tick:
				if ev.Key == expiringKey {
					return hub.Verdict{Value: &SessionEvent{Type: SessionExpiring, ExpiresAt: expires}, Deliver: true}
				}
			case *event:
				if ev.Kind == evSessionRefreshed {
					expires = ev.At
					return hub.Verdict{Value: &SessionEvent{Type: SessionRefreshed, ExpiresAt: expires}, Deliver: true, Wake: warn()}
				}
			}
			return hub.Verdict{}
		},
	})
}

// renewSession replaces the token of the caller's realtime connection, if
// the caller came through one, with fresh (already checked to be the
// caller's), and tells its sessionEvents subscribers.
func (s *Service) renewSession(ctx context.Context, fresh auth.Principal) {
	p, _ := auth.FromContext(ctx)
	if p.Session == "" || s.hub == nil {
		return
	}
	fresh.Session = p.Session
	if s.hub.Renew(p.Session, fresh) {
		s.publish(ctx, sessionTopic(p.Session), &event{Kind: evSessionRefreshed, At: fresh.ExpiresAt})
	}
}
