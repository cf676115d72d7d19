package chat

import (
	"context"
	"sync"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/models"
)

// typingTimers tracks who is typing where, on this node. Typing is never
// stored.
//
// Behind a load balancer one user's startTyping and sendMessage calls land
// on any node, so while a node has spells in a channel it also watches the
// channel's events (see watchTyping): a message from a typing user ends
// their spell at once whichever node stored it, and a typingStarted for the
// same user from another node hands the spell over to that node, silently.
type typingTimers struct {
	timeout time.Duration
	// node tells this node's typing events from other nodes'.
	node string

	mu      sync.Mutex // guards the fields below
	spells  map[typingKey]*spell
	watches map[string]*typingWatch // by channel ID, while it has spells
}

type typingKey struct{ channelID, userID string }

// spell is one user typing in one channel. Its timer fires at or after its
// deadline; a startTyping only moves the deadline, and the timer re-arms
// itself when it fires early, so a refresh can never race an ending.
type spell struct {
	deadline time.Time
	timer    *time.Timer
	channel  *models.Channel
	user     *models.User
}

// typingWatch is the watch of one channel's events: spells counts this
// node's spells there, and stop ends the watch.
type typingWatch struct {
	spells int
	stop   context.CancelFunc
}

func newTypingTimers(timeout time.Duration) *typingTimers {
	return &typingTimers{timeout: timeout, node: newID(), spells: map[typingKey]*spell{}, watches: map[string]*typingWatch{}}
}

// StartTyping tells the channel's other members that the caller is typing.
// Members only. typingStarted is published when a spell starts; calls during
// a spell only push its end back: typingEnded follows TypingTimeout after the
// last call, or at once when the caller sends a message.
//
// Spells live on the node that received the call; the other nodes with a
// spell of the same user in the channel hand theirs over (see
// typingTimers). Subscribers see one typingStarted per spell (see Typing).
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
	if err := a.requireWrite(); err != nil {
		return false, err
	}
	if p, _ := auth.FromContext(ctx); !s.rates.Typing(p, channelID) {
		return true, nil // one call too many: nothing to do
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
		sp = &spell{deadline: time.Now().Add(t.timeout), channel: a.ch, user: &user}
		t.spells[key] = sp
		endCtx := context.WithoutCancel(ctx)
		sp.timer = time.AfterFunc(t.timeout, func() { s.spellTimer(endCtx, key, sp) })
		s.addSpellLocked(channelID)
	}
	t.mu.Unlock()
	if !typing {
		s.publish(ctx, channelTopic(channelID), &event{Kind: evTypingStarted, Channel: a.ch, User: &user, At: now(), Node: t.node})
	}
	return true, nil
}

// spellTimer runs when sp's timer fires: it ends the spell if its deadline
// has passed and it is still the user's current spell, or re-arms the timer.
func (s *Service) spellTimer(ctx context.Context, key typingKey, sp *spell) {
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
	s.removeSpellLocked(key)
	t.mu.Unlock()
	s.publish(ctx, channelTopic(key.channelID), &event{Kind: evTypingEnded, Channel: sp.channel, User: sp.user, At: now()})
}

// endTyping ends user's typing spell in the channel at once, if one is
// running on this node, and publishes typingEnded.
func (s *Service) endTyping(ctx context.Context, channelID, userID string) {
	key := typingKey{channelID, userID}
	t := s.typing
	t.mu.Lock()
	sp, typing := t.spells[key]
	if typing {
		sp.timer.Stop()
		s.removeSpellLocked(key)
	}
	t.mu.Unlock()
	if typing {
		s.publish(ctx, channelTopic(channelID), &event{Kind: evTypingEnded, Channel: sp.channel, User: sp.user, At: now()})
	}
}

// handOverTyping drops this node's spell of user in the channel without an
// event: another node announced a spell of its own, which goes on.
func (s *Service) handOverTyping(channelID, userID string) {
	key := typingKey{channelID, userID}
	t := s.typing
	t.mu.Lock()
	defer t.mu.Unlock()
	if sp, typing := t.spells[key]; typing {
		sp.timer.Stop()
		s.removeSpellLocked(key)
	}
}

// addSpellLocked counts a new spell in the channel and starts watching the
// channel with the first one. t.mu must be held.
func (s *Service) addSpellLocked(channelID string) {
	t := s.typing
	if w, ok := t.watches[channelID]; ok {
		w.spells++
		return
	}
	if s.broker == nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	t.watches[channelID] = &typingWatch{spells: 1, stop: stop}
	go s.watchTyping(ctx, channelID)
}

// removeSpellLocked forgets the spell of key and stops watching its channel
// with the last one. t.mu must be held and the spell must exist.
func (s *Service) removeSpellLocked(key typingKey) {
	t := s.typing
	delete(t.spells, key)
	w, ok := t.watches[key.channelID]
	if !ok {
		return
	}
	if w.spells--; w.spells == 0 {
		w.stop()
		delete(t.watches, key.channelID)
	}
}

// watchTyping follows a channel's events while this node has spells there
// (until ctx ends): a message ends its author's spell, and another node's
// typingStarted takes over the same user's spell. Events published before
// the watch is live are missed; the spell then ends by its timer.
func (s *Service) watchTyping(ctx context.Context, channelID string) {
	sub, err := s.broker.Subscribe(ctx, channelTopic(channelID))
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "watch typing", "channel", channelID, "err", err)
		}
		return
	}
	defer sub.Close()
	for {
		m, ok := sub.Next(ctx)
		if !ok {
			return
		}
		ev, err := decodeEvent(m.Data)
		if err != nil {
			continue // the hub logs it
		}
		switch {
		case ev.Kind == evMessageAdded && ev.Message != nil && ev.Message.AuthorID != nil:
			s.endTyping(ctx, channelID, *ev.Message.AuthorID)
		case ev.Kind == evTypingStarted && ev.Node != s.typing.node && ev.User != nil:
			s.handOverTyping(channelID, ev.User.ID)
		}
	}
}
