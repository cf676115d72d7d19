package chat

import (
	"context"
	"database/sql"
	"fmt"

	"gorm.io/gorm"

	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/delivery"
)

// Delivery queues the notifications of a write in the write's own
// transaction (package delivery/queue implements it): a crash after the
// commit loses none, and a write rolled back notifies nobody.
// Implementations are safe for concurrent use.
type Delivery interface {
	// PushEnabled reports whether any push provider is configured.
	PushEnabled() bool
	// WantsWebhook reports whether webhooks of event type typ are
	// delivered.
	WantsWebhook(typ string) bool
	// EnqueueTx inserts jobs through tx.
	EnqueueTx(ctx context.Context, tx *sql.Tx, jobs delivery.Jobs) error
}

// PreSendHook asks the application's backend about a message before it is
// written (package delivery/webhook implements it). Implementations are
// safe for concurrent use.
type PreSendHook interface {
	// Check posts the request body, signed as id, and returns the
	// backend's verdict; an error means the message must not be written
	// (the hook failed and fails closed).
	Check(ctx context.Context, id string, body []byte) (delivery.Verdict, error)
}

// write runs fn in a write transaction, as store.Write does, and before it
// commits queues the webhooks of the events fn added to out (see
// webhookJobs). The caller publishes out once write returns nil.
func (s *Service) write(ctx context.Context, out *outbox, fn func(tx *gorm.DB) error) error {
	return s.store.Write(ctx, func(tx *gorm.DB) error {
		*out = (*out)[:0]
		if err := fn(tx); err != nil {
			return err
		}
		jobs, err := s.webhookJobs(tx, *out)
		if err != nil {
			return err
		}
		return s.enqueue(tx, jobs)
	})
}

// enqueue inserts jobs in the transaction tx, when there are any.
func (s *Service) enqueue(tx *gorm.DB, jobs delivery.Jobs) error {
	if s.delivery == nil || jobs.Empty() {
		return nil
	}
	sqlTx, err := db.SQLTx(tx)
	if err != nil {
		return fmt.Errorf("enqueue deliveries: %w", err)
	}
	return s.delivery.EnqueueTx(tx.Statement.Context, sqlTx, jobs)
}

// pushesEnabled reports whether new messages queue push jobs.
func (s *Service) pushesEnabled() bool { return s.delivery != nil && s.delivery.PushEnabled() }

// wantsWebhook reports whether events of type typ become webhooks.
func (s *Service) wantsWebhook(typ string) bool {
	return s.delivery != nil && s.delivery.WantsWebhook(typ)
}
