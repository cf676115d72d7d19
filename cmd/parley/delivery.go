package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/queue"
	"github.com/parleychat/parley/delivery/setup"
)

// deliveryQueue is the delivery queue the server runs, with the LISTEN pool
// it owns on PostgreSQL.
type deliveryQueue struct {
	*queue.Queue
	listener *pgxpool.Pool
}

// openDelivery opens the delivery queue on store when anything is to be
// delivered (a push provider or webhooks), and nil otherwise: then sends
// queue no job at all.
func openDelivery(ctx context.Context, parts *setup.Setup, store *db.Store, log *slog.Logger) (*deliveryQueue, error) {
	if !parts.Delivers() {
		return nil, nil
	}
	pool, err := store.QueueDB()
	if err != nil {
		return nil, err
	}
	var listener *pgxpool.Pool
	if store.Dialect() == db.DialectPostgres {
		if listener, err = store.ListenerPool(ctx); err != nil {
			return nil, err
		}
	}
	q, err := parts.Queue(pool, store.Dialect() == db.DialectSQLite, listener)
	if err != nil {
		if listener != nil {
			listener.Close()
		}
		return nil, err
	}
	log.Info("delivery queue open", "database", store.Dialect(), "listen", listener != nil)
	return &deliveryQueue{Queue: q, listener: listener}, nil
}

// start works the queue, with source finding the recipients of pushes.
func (d *deliveryQueue) start(ctx context.Context, source delivery.PushSource) error {
	if err := d.Start(ctx, source); err != nil {
		d.close()
		return err
	}
	return nil
}

// stop stops working the queue, letting running jobs finish as long as ctx
// allows, and closes the LISTEN pool.
func (d *deliveryQueue) stop(ctx context.Context) error {
	err := d.Stop(ctx)
	d.close()
	return err
}

// close closes the LISTEN pool.
func (d *deliveryQueue) close() {
	if d.listener != nil {
		d.listener.Close()
	}
}
