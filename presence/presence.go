// Package presence counts who is online: each user's live connections, on
// this node and across every node of a deployment.
//
// Two implementations exist: package presence/memory for a single process
// and package presence/redis for several nodes sharing one Redis server.
// Package presence/presencetest holds the conformance tests both must pass.
package presence

import (
	"context"
	"errors"
)

// ErrClosed is returned by the methods of a closed Tracker.
var ErrClosed = errors.New("presence: closed")

// Tracker counts each user's live connections across all nodes.
//
// Implementations are safe for concurrent use by multiple goroutines.
type Tracker interface {
	// Connect records one more connection of user on this node; first is
	// true when the user had none on any node before.
	Connect(ctx context.Context, userID string) (first bool, err error)
	// Disconnect records one connection fewer; last is true when the user
	// now has none on any node. Disconnecting a user with no connection on
	// this node is an error.
	Disconnect(ctx context.Context, userID string) (last bool, err error)
	// Online reports which of userIDs have at least one connection on a
	// live node. The map has an entry for every one of userIDs.
	Online(ctx context.Context, userIDs []string) (map[string]bool, error)
	// Watch makes lapsed learn of the users who went offline because the
	// node holding their last connections stopped without Close (it
	// crashed, or lost the shared store for longer than its entries
	// live): Connect and Disconnect report every other change. Each such
	// user is reported once, on one live node, from a goroutine of the
	// Tracker's own. Call Watch once, before the first Connect.
	Watch(lapsed func(userID string))
	// Close forgets this node's connections; later calls to the other
	// methods return ErrClosed and later calls to Close return nil.
	Close() error
}
