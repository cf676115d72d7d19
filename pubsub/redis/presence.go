package redis

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/pubsub"
)

const (
	// presencePrefix is put before a user ID to make the key of the
	// user's sorted set: member = node ID, score = expiry in Unix ms.
	presencePrefix = "parley:presence:"
	// defaultTTL is the ttl NewPresence uses when given none.
	defaultTTL = 30 * time.Second
	// refreshBatch is the number of users one heartbeat script refreshes.
	refreshBatch = 256
	// closeTimeout bounds the removal of a node's entries by Close.
	closeTimeout = 5 * time.Second
	// stripes is the number of locks that serialize the Redis updates of
	// one user.
	stripes = 64
)

// connectScript adds a node's entry to a user's presence set and returns
// how many other nodes have a live entry there. KEYS[1] is the set; ARGV
// are the node ID, the time now, the entry's expiry (both Unix ms) and the
// ttl in ms, which the key itself keeps at least.
var connectScript = goredis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local others = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  others = others - 1
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return others
`)

// disconnectScript removes a node's entry from a user's presence set and
// returns how many live entries remain. KEYS[1] is the set; ARGV are the
// node ID and the time now (Unix ms).
var disconnectScript = goredis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
return redis.call('ZCARD', KEYS[1])
`)

// refreshScript renews a node's entry in the presence sets KEYS. ARGV are
// the node ID, the new expiry (Unix ms) and the ttl in ms, which each key
// itself keeps at least.
var refreshScript = goredis.NewScript(`
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[1])
  if redis.call('PTTL', key) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', key, ARGV[3])
  end
end
return #KEYS
`)

var _ pubsub.Presence = (*Presence)(nil)

// Presence is a pubsub.Presence shared by the nodes using one Redis server.
// Each node counts its own connections per user; while a user has any, the
// node keeps an entry in the sorted set "parley:presence:<userID>" whose
// score is the entry's expiry, renewed every ttl/3. A user is online while
// an entry has not expired, so the users of a node that died without
// Close go offline after at most ttl. Node clocks are assumed to agree to
// well within ttl. A Presence is safe for concurrent use.
type Presence struct {
	client *goredis.Client
	node   string
	ttl    time.Duration
	log    *slog.Logger
	seed   maphash.Seed
	cancel context.CancelFunc // stops the heartbeat
	done   chan struct{}      // closed when the heartbeat has stopped

	// locks serialize Connect and Disconnect of each user (by stripe)
	// with each other, with the heartbeat and with Close, so that their
	// updates reach Redis in the order of the local counts.
	locks [stripes]sync.Mutex

	// mu guards the fields below.
	mu     sync.Mutex
	closed bool
	counts map[string]int
}

// NewPresence returns the Presence of node nodeID, which must be unique
// among the nodes sharing the Redis server; its entries expire after ttl
// (30s when ttl is zero or negative). Its heartbeat runs until
// ctx is done or Close is called; a Presence whose heartbeat stopped
// without Close behaves like a crashed node: its users go offline once
// their entries expire. Heartbeat failures are logged through
// slog.Default().
func NewPresence(ctx context.Context, client *goredis.Client, nodeID string, ttl time.Duration) *Presence {
	if ttl <= 0 {
		ttl = defaultTTL
	}
	hctx, cancel := context.WithCancel(ctx)
	p := &Presence{
		client: client,
		node:   nodeID,
		ttl:    ttl,
		log:    slog.Default().With("presence_node", nodeID),
		seed:   maphash.MakeSeed(),
		cancel: cancel,
		done:   make(chan struct{}),
		counts: make(map[string]int),
	}
	go p.heartbeat(hctx)
	return p
}

// presenceKey returns the key of userID's presence set.
func presenceKey(userID string) string { return presencePrefix + userID }

// lock returns the lock that serializes the updates of userID.
func (p *Presence) lock(userID string) *sync.Mutex {
	return &p.locks[maphash.String(p.seed, userID)%stripes]
}

// Connect implements pubsub.Presence. On error the connection is not
// counted.
func (p *Presence) Connect(ctx context.Context, userID string) (bool, error) {
	l := p.lock(userID)
	l.Lock()
	defer l.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false, pubsub.ErrClosed
	}
	n := p.counts[userID]
	p.counts[userID] = n + 1
	p.mu.Unlock()
	if n > 0 {
		return false, nil
	}
	now := time.Now()
	others, err := connectScript.Run(ctx, p.client, []string{presenceKey(userID)},
		p.node, now.UnixMilli(), now.Add(p.ttl).UnixMilli(), p.ttl.Milliseconds()).Int64()
	if err != nil {
		p.mu.Lock()
		delete(p.counts, userID)
		p.mu.Unlock()
		return false, fmt.Errorf("pubsub: presence connect of user %q: %w", userID, err)
	}
	return others == 0, nil
}

// Disconnect implements pubsub.Presence. On error the connection is no
// longer counted all the same, and the node's entry expires within ttl.
func (p *Presence) Disconnect(ctx context.Context, userID string) (bool, error) {
	l := p.lock(userID)
	l.Lock()
	defer l.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false, pubsub.ErrClosed
	}
	n := p.counts[userID]
	switch {
	case n == 0:
		p.mu.Unlock()
		return false, fmt.Errorf("pubsub: disconnect of user %q, who has no connection on this node", userID)
	case n > 1:
		p.counts[userID] = n - 1
		p.mu.Unlock()
		return false, nil
	}
	delete(p.counts, userID)
	p.mu.Unlock()
	left, err := disconnectScript.Run(ctx, p.client, []string{presenceKey(userID)},
		p.node, time.Now().UnixMilli()).Int64()
	if err != nil {
		return false, fmt.Errorf("pubsub: presence disconnect of user %q: %w", userID, err)
	}
	return left == 0, nil
}

// Online implements pubsub.Presence with one pipeline that drops the
// expired entries of each user and counts the rest.
func (p *Presence) Online(ctx context.Context, userIDs []string) (map[string]bool, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, pubsub.ErrClosed
	}
	online := make(map[string]bool, len(userIDs))
	if len(userIDs) == 0 {
		return online, nil
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	cards := make(map[string]*goredis.IntCmd, len(userIDs))
	_, err := p.client.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for _, id := range userIDs {
			if _, ok := cards[id]; ok {
				continue
			}
			key := presenceKey(id)
			pipe.ZRemRangeByScore(ctx, key, "-inf", now)
			cards[id] = pipe.ZCard(ctx, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pubsub: presence lookup: %w", err)
	}
	for id, card := range cards {
		online[id] = card.Val() > 0
	}
	return online, nil
}

// Close stops the heartbeat and removes this node's entries, so that its
// users who have no other node go offline at once.
func (p *Presence) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	<-p.done
	p.lockAll()
	defer p.unlockAll()
	p.mu.Lock()
	users := make([]string, 0, len(p.counts))
	for u := range p.counts {
		users = append(users, u)
	}
	p.counts = nil
	p.mu.Unlock()
	if len(users) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_, err := p.client.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for _, u := range users {
			pipe.ZRem(ctx, presenceKey(u), p.node)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pubsub: presence close: %w", err)
	}
	return nil
}

// heartbeat renews this node's entries every ttl/3 until ctx is done.
func (p *Presence) heartbeat(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(p.ttl / 3)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := p.refresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failing = true
			p.log.Warn("pubsub: presence heartbeat failed", "err", err)
		case failing:
			failing = false
			p.log.Info("pubsub: presence heartbeat restored")
		}
	}
}

// refresh renews the entries of every user connected to this node.
func (p *Presence) refresh(ctx context.Context) error {
	p.lockAll()
	defer p.unlockAll()
	p.mu.Lock()
	keys := make([]string, 0, len(p.counts))
	for u := range p.counts {
		keys = append(keys, presenceKey(u))
	}
	p.mu.Unlock()
	expiry := time.Now().Add(p.ttl).UnixMilli()
	for len(keys) > 0 {
		batch := keys[:min(len(keys), refreshBatch)]
		keys = keys[len(batch):]
		if err := refreshScript.Run(ctx, p.client, batch, p.node, expiry, p.ttl.Milliseconds()).Err(); err != nil {
			return fmt.Errorf("refresh %d users: %w", len(batch), err)
		}
	}
	return nil
}

// lockAll takes every stripe lock, in order.
func (p *Presence) lockAll() {
	for i := range p.locks {
		p.locks[i].Lock()
	}
}

// unlockAll releases every stripe lock.
func (p *Presence) unlockAll() {
	for i := range p.locks {
		p.locks[i].Unlock()
	}
}
