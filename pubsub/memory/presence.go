package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/parleychat/parley/pubsub"
)

var _ pubsub.Presence = (*Presence)(nil)

// Presence is an in-process pubsub.Presence: this process is the only node.
// A Presence is safe for concurrent use.
type Presence struct {
	mu     sync.Mutex
	closed bool
	counts map[string]int
}

// Watch implements pubsub.Presence. Within one process no node can stop
// without the others knowing, so lapsed is never called.
func (p *Presence) Watch(lapsed func(userID string)) {}

// NewPresence returns a Presence with nobody connected.
func NewPresence() *Presence {
	return &Presence{counts: make(map[string]int)}
}

// Connect implements pubsub.Presence.
func (p *Presence) Connect(ctx context.Context, userID string) (first bool, err error) {
	err = p.locked(ctx, func() error {
		p.counts[userID]++
		first = p.counts[userID] == 1
		return nil
	})
	return first, err
}

// Disconnect implements pubsub.Presence.
func (p *Presence) Disconnect(ctx context.Context, userID string) (last bool, err error) {
	err = p.locked(ctx, func() error {
		n := p.counts[userID]
		switch n {
		case 0:
			return fmt.Errorf("pubsub: disconnect of user %q, who has no connection", userID)
		case 1:
			delete(p.counts, userID)
			last = true
		default:
			p.counts[userID] = n - 1
		}
		return nil
	})
	return last, err
}

// Online implements pubsub.Presence.
func (p *Presence) Online(ctx context.Context, userIDs []string) (online map[string]bool, err error) {
	err = p.locked(ctx, func() error {
		online = make(map[string]bool, len(userIDs))
		for _, id := range userIDs {
			online[id] = p.counts[id] > 0
		}
		return nil
	})
	return online, err
}

// locked runs f with p.mu held and returns its error. It returns ctx's
// error instead if ctx is done, or pubsub.ErrClosed after Close.
func (p *Presence) locked(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return pubsub.ErrClosed
	}
	return f()
}

// Close implements pubsub.Presence. It always returns nil.
func (p *Presence) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.counts = nil
	return nil
}
