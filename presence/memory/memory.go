// Package memory implements presence.Tracker inside one process, for
// single-node deployments and tests. Its Tracker is safe for concurrent use
// by multiple goroutines.
package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/parleychat/parley/presence"
)

var _ presence.Tracker = (*Tracker)(nil)

// Tracker is an in-process presence.Tracker: this process is the only node.
// A Tracker is safe for concurrent use.
type Tracker struct {
	mu     sync.Mutex
	closed bool
	counts map[string]int
}

// Watch implements presence.Tracker. Within one process no node can stop
// without the others knowing, so lapsed is never called.
func (p *Tracker) Watch(lapsed func(userID string)) {}

// New returns a Tracker with nobody connected.
func New() *Tracker {
	return &Tracker{counts: make(map[string]int)}
}

// Connect implements presence.Tracker.
func (p *Tracker) Connect(ctx context.Context, userID string) (first bool, err error) {
	err = p.locked(ctx, func() error {
		p.counts[userID]++
		first = p.counts[userID] == 1
		return nil
	})
	return first, err
}

// Disconnect implements presence.Tracker.
func (p *Tracker) Disconnect(ctx context.Context, userID string) (last bool, err error) {
	err = p.locked(ctx, func() error {
		n := p.counts[userID]
		switch n {
		case 0:
			return fmt.Errorf("presence: disconnect of user %q, who has no connection", userID)
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

// Online implements presence.Tracker.
func (p *Tracker) Online(ctx context.Context, userIDs []string) (online map[string]bool, err error) {
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
// error instead if ctx is done, or presence.ErrClosed after Close.
func (p *Tracker) locked(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return presence.ErrClosed
	}
	return f()
}

// Close implements presence.Tracker. It always returns nil.
func (p *Tracker) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.counts = nil
	return nil
}
