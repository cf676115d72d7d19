package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"

	"github.com/parleychat/parley/presence"
	presencememory "github.com/parleychat/parley/presence/memory"
	presenceredis "github.com/parleychat/parley/presence/redis"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/memory"
	"github.com/parleychat/parley/pubsub/redis"
)

// realtime is the broker and presence tracker the server runs with.
type realtime struct {
	broker   pubsub.Broker
	presence presence.Tracker
}

// openRealtime picks the broker: Redis when REDIS_URL is set, so that
// several nodes act as one; otherwise in-process.
func openRealtime(ctx context.Context, url string, log *slog.Logger) (*realtime, error) {
	if url == "" {
		return &realtime{broker: memory.New(pubsub.Options{Logger: log}), presence: presencememory.New()}, nil
	}
	broker, err := redis.NewFromURL(ctx, url, pubsub.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("redis broker: %w", err)
	}
	tracker, err := presenceredis.NewFromURL(ctx, url, nodeID(), presenceredis.Options{})
	if err != nil {
		return nil, errClose(fmt.Errorf("redis presence: %w", err), broker)
	}
	return &realtime{broker: broker, presence: tracker}, nil
}

// Close closes the presence tracker (removing this node's connections) and
// the broker.
func (r *realtime) Close() error {
	perr := r.presence.Close()
	if err := r.broker.Close(); err != nil {
		return err
	}
	return perr
}

// nodeID names this process among the nodes sharing Redis.
func nodeID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "node"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
