package chat

import (
	"context"
	"sync"
	"time"

	"github.com/parleychat/parley/models"
)

// typingTimers tracks who is typing where, on this node. Typing is never
// stored.
type typingTimers struct {
	timeout time.Duration
	mu      sync.Mutex
	spells  map[typingKey]*spell
}

type typingKey struct{ channelID, userID string }

// spell is one user typing in one channel. Its timer fires at or after its
// deadline; a startTyping only moves the deadline, and the timer re-arms
// itself when it fires early, so a refresh can never race an ending.
type spell struct {
	deadline time.Time
	timer    *time.Timer
}

func newTypingTimers(timeout time.Duration) *typingTimers {
	return &typingTimers{timeout: timeout, spells: map[typingKey]*spell{}}
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
	sp, typing := t.spells[key]
	if typing {
		sp.deadline = time.Now().Add(t.timeout)
	} else {
		sp = &spell{deadline: time.Now().Add(t.timeout)}
		t.spells[key] = sp
		endCtx := context.WithoutCancel(ctx)
		sp.timer = time.AfterFunc(t.timeout, func() { s.spellTimer(endCtx, key, sp, a.ch, &user) })
	}
	t.mu.Unlock()
	if !typing {
		s.publish(ctx, channelTopic(channelID), &event{Kind: evTypingStarted, Channel: a.ch, User: &user, At: now()})
	}
	return true, nil
}

// spellTimer runs when sp's timer fires: it ends the spell if its deadline
// has passed and it is still the user's current spell, or re-arms the timer.
func (s *Service) spellTimer(ctx context.Context, key typingKey, sp *spell, ch *models.Channel, user *models.User) {
	t := s.typing
	t.mu.Lock()
	if t.spells[key] != sp {
		t.mu.Unlock()
		return
	}
	if wait := time.Until(sp.deadline); wait > 0 {
		sp.timer.Reset(wait)
		t.mu.Unlock()
		return
	}
	delete(t.spells, key)
	t.mu.Unlock()
	s.publish(ctx, channelTopic(ch.ID), &event{Kind: evTypingEnded, Channel: ch, User: user, At: now()})
}

// endTyping ends user's typing spell in ch at once, if one is running on
// this node, and publishes typingEnded.
func (s *Service) endTyping(ctx context.Context, ch *models.Channel, user *models.User) {
	key := typingKey{ch.ID, user.ID}
	t := s.typing
	t.mu.Lock()
	sp, typing := t.spells[key]
	if typing {
		sp.timer.Stop()
		delete(t.spells, key)
	}
	t.mu.Unlock()
	if typing {
		s.publish(ctx, channelTopic(ch.ID), &event{Kind: evTypingEnded, Channel: ch, User: user, At: now()})
	}
}
