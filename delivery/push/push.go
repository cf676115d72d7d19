// Package push is what the push worker needs from a push provider (FCM,
// APNs): send one notification to one device, and say whether a failure
// means the device token is dead, is worth retrying, or is final.
package push

import (
	"context"
	"errors"

	"github.com/parleychat/parley/delivery"
)

// Provider delivers notifications through one push service.
// Implementations are safe for concurrent use.
type Provider interface {
	// Send delivers p to its device. Its error is nil on success, wraps
	// ErrInvalidToken when the service says the token is dead (the
	// registration is removed), is a *delivery.TransientError when a later
	// attempt may succeed, and is final otherwise.
	Send(ctx context.Context, p *delivery.Push) error
}

// ErrInvalidToken says a device token is no longer valid: the app was
// uninstalled, or the token is malformed.
var ErrInvalidToken = errors.New("device token is invalid")
