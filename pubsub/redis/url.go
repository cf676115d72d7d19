package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/pubsub"
)

// ownedPresence is a Presence that owns its client.
type ownedPresence struct {
	*Presence
	closeClient func() error
}

// Close removes this node's entries and closes the client; closing twice
// is a no-op.
func (p ownedPresence) Close() error {
	return errors.Join(p.Presence.Close(), p.closeClient())
}

// NewPresenceFromURL is NewPresence on a client of its own for a redis://
// URL; closing the Presence closes the client. It pings Redis first, so a
// wrong URL fails here rather than on the first connection.
func NewPresenceFromURL(ctx context.Context, url, nodeID string, opts PresenceOptions) (pubsub.Presence, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("pubsub: redis url: %w", err)
	}
	client := goredis.NewClient(o)
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, errors.Join(fmt.Errorf("pubsub: redis ping: %w", err), client.Close())
	}
	return ownedPresence{
		Presence:    NewPresence(context.WithoutCancel(ctx), client, nodeID, opts),
		closeClient: sync.OnceValue(client.Close),
	}, nil
}
