package chat

import (
	"context"
	"sync"
	"time"

	"github.com/parleychat/parley/models"
)

// typingTimers tracks who is typing where, on this node, with the timer that
// ends each typing spell. Typing is never stored.
type typingTimers struct {
	timeout time.Duration
	mu      sync.Mutex
	timers  map[typingKey]*time.Timer
}

type typingKey struct{ channelID, userID string }

func newTypingTimers(timeout time.Duration) *typingTimers {
	return &typingTimers{timeout: timeout, timers: map[typingKey]*time.Timer{}}
}

// StartTyping tells the channel's other members that the caller is typing.
// Members only. typingStarted is published when a spell starts; calls during
// a spell only push its end back: typingEnded follows TypingTimeout after the
// last call, or at once when the caller sends a message.
//
// Spells live on the node that received the call: a client that sends its
// startTyping calls to different nodes may see a spell end early.
func (s *Service) StartTyping(ctx context.Context, channelID string) (bool, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return false, err
	}
	q := s.store.DB(ctx)
	a, err := loadAccess(q, v, channelID)
	if err != nil {
		return false, internal("start typing", err)
	}
	if err := a.requireMember(); err != nil {
		return false, err
	}
	var user models.User
	if err := q.Take(&user, "id = ?", v.UserID).Error; err != nil {
		return false, internal("start typing", err)
	}
	key := typingKey{channelID, v.UserID}
	t := s.typing
	t.mu.Lock()
	timer, spell := t.timers[key]
	if spell {
		timer.Reset(t.timeout)
	} else {
		t.timers[key] = time.AfterFunc(t.timeout, func() {
			s.endTyping(context.WithoutCancel(ctx), a.ch, &user)
		})
	}
	t.mu.Unlock()
	if !spell {
		s.publish(ctx, channelTopic(channelID), &event{Kind: evTypingStarted, Channel: a.ch, User: &user, At: now()})
	}
	return true, nil
}

// endTyping ends user's typing spell in ch, if one is running on this node,
// and publishes typingEnded.
func (s *Service) endTyping(ctx context.Context, ch *models.Channel, user *models.User) {
	key := typingKey{ch.ID, user.ID}
	t := s.typing
	t.mu.Lock()
	timer, spell := t.timers[key]
	if spell {
		timer.Stop()
		delete(t.timers, key)
	}
	t.mu.Unlock()
	if spell {
		s.publish(ctx, channelTopic(ch.ID), &event{Kind: evTypingEnded, Channel: ch, User: user, At: now()})
	}
}
