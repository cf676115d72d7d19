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

// NewPresence returns a Presence with nobody connected.
func NewPresence() *Presence {
	return &Presence{counts: make(map[string]int)}
}

// Connect implements pubsub.Presence.
func (p *Presence) Connect(ctx context.Context, userID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, pubsub.ErrClosed
	}
	p.counts[userID]++
	return p.counts[userID] == 1, nil
}

// Disconnect implements pubsub.Presence.
func (p *Presence) Disconnect(ctx context.Context, userID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, pubsub.ErrClosed
	}
	n := p.counts[userID]
	switch n {
	case 0:
		return false, fmt.Errorf("pubsub: disconnect of user %q, who has no connection", userID)
	case 1:
		delete(p.counts, userID)
		return true, nil
	default:
		p.counts[userID] = n - 1
		return false, nil
	}
}

// Online implements pubsub.Presence.
func (p *Presence) Online(ctx context.Context, userIDs []string) (map[string]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, pubsub.ErrClosed
	}
	online := make(map[string]bool, len(userIDs))
	for _, id := range userIDs {
		online[id] = p.counts[id] > 0
	}
	return online, nil
}

// Close implements pubsub.Presence. It always returns nil.
func (p *Presence) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.counts = nil
	return nil
}
