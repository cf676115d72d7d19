package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

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
func openRealtime(ctx context.Context, getenv func(string) string, log *slog.Logger) (*realtime, error) {
	url := getenv("REDIS_URL")
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

// allowedOrigins reads PARLEY_ALLOWED_ORIGINS: comma-separated host patterns
// whose pages may open WebSockets.
func allowedOrigins(getenv func(string) string) []string {
	var out []string
	for _, o := range strings.Split(getenv("PARLEY_ALLOWED_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// envDuration reads a duration variable; unset is 0 (the default).
func envDuration(getenv func(string) string, name string) (time.Duration, error) {
	s := getenv(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 5s", name, s)
	}
	return d, nil
}
