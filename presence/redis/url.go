package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/redistrace"
	"github.com/parleychat/parley/presence"
)

// ownedTracker is a Tracker that owns its client.
type ownedTracker struct {
	*Tracker
	closeClient func() error
}

// Close removes this node's entries and closes the client; closing twice
// is a no-op.
func (p ownedTracker) Close() error {
	return errors.Join(p.Tracker.Close(), p.closeClient())
}

// NewFromURL is New on a client of its own for a redis:// URL; closing the
// Tracker closes the client. It pings Redis first, so a wrong URL fails
// here rather than on the first connection.
func NewFromURL(ctx context.Context, url, nodeID string, opts Options) (presence.Tracker, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("presence: redis url: %w", err)
	}
	client := goredis.NewClient(o)
	if opts.Trace != nil {
		client.AddHook(redistrace.Hook(opts.Trace))
	}
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, errors.Join(fmt.Errorf("presence: redis ping: %w", err), client.Close())
	}
	return ownedTracker{
		Tracker:     New(context.WithoutCancel(ctx), client, nodeID, opts),
		closeClient: sync.OnceValue(client.Close),
	}, nil
}
