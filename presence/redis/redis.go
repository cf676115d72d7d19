// Package redis implements presence.Tracker on a Redis server shared by
// every node of a deployment. Its Tracker is safe for concurrent use by
// multiple goroutines.
package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/presence"
)

const (
	// presencePrefix is put before a user ID to make the key of the
	// user's sorted set: member = node ID, score = expiry in Unix ms.
	presencePrefix = "parley:presence:"
	// nodesPrefix is put before a cluster name to make the key of the
	// sorted set of the cluster's nodes that have users: member = node ID,
	// score = expiry in Unix ms, renewed with the node's entries.
	nodesPrefix = "parley:presence-nodes:"
	// nodeUsersPrefix is put before a cluster name, a colon and a node ID
	// to make the key of the set of users that node has entries for.
	nodeUsersPrefix = "parley:presence-node:"
	// DefaultCluster is the cluster of a Tracker whose options name none.
	DefaultCluster = "parley"
	// sweepBatch is the number of expired nodes one sweep takes over.
	sweepBatch = 16
	// defaultTTL is the ttl New uses when given none.
	defaultTTL = 30 * time.Second
	// refreshBatch is the number of users one heartbeat script refreshes.
	refreshBatch = 256
	// closeTimeout bounds the removal of a node's entries by Close.
	closeTimeout = 5 * time.Second
	// stripes is the number of locks that serialize the Redis updates of
	// one user.
	stripes = 64
)

// connectScript adds a node's entry to a user's presence set, records the
// user among the node's and the node among the live ones, and returns how
// many other nodes have a live entry for the user. KEYS are the user's
// set, the node's user set and the cluster's nodes set; ARGV are the node
// ID, the time now, the entry's expiry (both Unix ms), the ttl in ms, which
// the user's key itself keeps at least, and the user ID.
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
redis.call('SADD', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return others
`)

// disconnectScript removes a node's entry from a user's presence set and
// the user from the node's user set, and returns how many live entries
// remain. KEYS are the user's set and the node's user set; ARGV are the
// node ID, the time now (Unix ms) and the user ID.
var disconnectScript = goredis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
return redis.call('ZCARD', KEYS[1])
`)

// refreshScript renews a node's entry in the presence sets KEYS[2:] and in
// the cluster's nodes set, KEYS[1]. ARGV are the node ID, the new expiry
// (Unix ms) and the ttl in ms, which each user's key itself keeps at least.
var refreshScript = goredis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
  end
end
return #KEYS
`)

// sweepScript takes over up to ARGV[2] nodes whose entries in the
// cluster's nodes set, KEYS[1], expired: it removes each node, its entries
// in its users' presence sets and its user set, and returns how many nodes
// it took over and the users left with no live entry. ARGV are the time now
// (Unix ms), the count and the key prefixes of presence sets and of node
// user sets. Being one script, it lets one sweeping node only take over
// each expired node. It reaches keys that KEYS does not name, so it needs
// one Redis server, not a cluster.
var sweepScript = goredis.NewScript(`
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local lapsed = {}
for _, node in ipairs(expired) do
  redis.call('ZREM', KEYS[1], node)
  local users = ARGV[4] .. node
  for _, user in ipairs(redis.call('SMEMBERS', users)) do
    local key = ARGV[3] .. user
    redis.call('ZREM', key, node)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
    if redis.call('ZCARD', key) == 0 then
      table.insert(lapsed, user)
    end
  end
  redis.call('DEL', users)
end
return {#expired, lapsed}
`)

var _ presence.Tracker = (*Tracker)(nil)

// Tracker is a presence.Tracker shared by the nodes using one Redis server.
// Each node counts its own connections per user; while a user has any, the
// node keeps an entry in the sorted set "parley:presence:<userID>" whose
// score is the entry's expiry, renewed every ttl/3. A user is online while
// an entry has not expired, so the users of a node that died without
// Close go offline after at most ttl. Every ttl/3 each node also sweeps:
// the first to see that another node's entries expired takes them over and
// reports the users left offline to Watch. Node clocks are assumed to
// agree to well within ttl. A Tracker is safe for concurrent use.
type Tracker struct {
	client *goredis.Client
	node   string
	ttl    time.Duration
	// nodesKey and nodeUsersPrefix are the cluster's keys (see the
	// constants of the same names).
	nodesKey        string
	nodeUsersPrefix string
	log             *slog.Logger
	seed            maphash.Seed
	cancel          context.CancelFunc // stops the heartbeat
	done            chan struct{}      // closed when the heartbeat has stopped

	// locks serialize Connect and Disconnect of each user (by stripe)
	// with each other, with the heartbeat and with Close, so that their
	// updates reach Redis in the order of the local counts.
	locks [stripes]sync.Mutex

	// mu guards the fields below.
	mu     sync.Mutex
	closed bool
	counts map[string]int
	lapsed func(userID string) // set by Watch
}

// Options configure a Tracker.
type Options struct {
	// TTL is how long the node's entries live without a heartbeat (one
	// every TTL/3); 30s when zero or negative.
	TTL time.Duration
	// Cluster names the nodes that take over each other's entries when
	// one stops without Close; DefaultCluster when empty. All nodes of a
	// deployment must use the same, and deployments that share a Redis
	// server different ones.
	Cluster string
	// Trace, when not nil, is called around each command a Tracker made
	// by NewFromURL sends (see pubsub.Options.Trace).
	Trace func(ctx context.Context, operation string) (end func(error))
}

// New returns the Tracker of node nodeID, which must be unique
// among the nodes sharing the Redis server. Its heartbeat runs until ctx is
// done or Close is called; a Tracker whose heartbeat stopped without
// Close behaves like a crashed node: its users go offline once their
// entries expire, and a node of its cluster reports them to Watch.
// Heartbeat failures are logged through slog.Default().
func New(ctx context.Context, client *goredis.Client, nodeID string, opts Options) *Tracker {
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = defaultTTL
	}
	cluster := opts.Cluster
	if cluster == "" {
		cluster = DefaultCluster
	}
	hctx, cancel := context.WithCancel(ctx)
	p := &Tracker{
		client:          client,
		node:            nodeID,
		ttl:             ttl,
		nodesKey:        nodesPrefix + cluster,
		nodeUsersPrefix: nodeUsersPrefix + cluster + ":",
		log:             slog.Default().With("presence_node", nodeID),
		seed:            maphash.MakeSeed(),
		cancel:          cancel,
		done:            make(chan struct{}),
		counts:          make(map[string]int),
	}
	go p.heartbeat(hctx)
	return p
}

// presenceKey returns the key of userID's presence set.
func presenceKey(userID string) string { return presencePrefix + userID }

// nodeUsersKey returns the key of the set of users node has entries for.
func (p *Tracker) nodeUsersKey(node string) string { return p.nodeUsersPrefix + node }

// Watch implements presence.Tracker.
func (p *Tracker) Watch(lapsed func(userID string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lapsed = lapsed
}

// lock returns the lock that serializes the updates of userID.
func (p *Tracker) lock(userID string) *sync.Mutex {
	return &p.locks[maphash.String(p.seed, userID)%stripes]
}

// Connect implements presence.Tracker. On error the connection is not
// counted.
func (p *Tracker) Connect(ctx context.Context, userID string) (bool, error) {
	l := p.lock(userID)
	l.Lock()
	defer l.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false, presence.ErrClosed
	}
	n := p.counts[userID]
	p.counts[userID] = n + 1
	p.mu.Unlock()
	if n > 0 {
		return false, nil
	}
	now := time.Now()
	others, err := connectScript.Run(ctx, p.client, []string{presenceKey(userID), p.nodeUsersKey(p.node), p.nodesKey},
		p.node, now.UnixMilli(), now.Add(p.ttl).UnixMilli(), p.ttl.Milliseconds(), userID).Int64()
	if err != nil {
		p.mu.Lock()
		delete(p.counts, userID)
		p.mu.Unlock()
		return false, fmt.Errorf("presence: redis connect of user %q: %w", userID, err)
	}
	return others == 0, nil
}

// Disconnect implements presence.Tracker. On error the connection is no
// longer counted all the same, and the node's entry expires within ttl.
func (p *Tracker) Disconnect(ctx context.Context, userID string) (bool, error) {
	l := p.lock(userID)
	l.Lock()
	defer l.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false, presence.ErrClosed
	}
	n := p.counts[userID]
	switch {
	case n == 0:
		p.mu.Unlock()
		return false, fmt.Errorf("presence: disconnect of user %q, who has no connection on this node", userID)
	case n > 1:
		p.counts[userID] = n - 1
		p.mu.Unlock()
		return false, nil
	}
	delete(p.counts, userID)
	p.mu.Unlock()
	left, err := disconnectScript.Run(ctx, p.client, []string{presenceKey(userID), p.nodeUsersKey(p.node)},
		p.node, time.Now().UnixMilli(), userID).Int64()
	if err != nil {
		return false, fmt.Errorf("presence: redis disconnect of user %q: %w", userID, err)
	}
	return left == 0, nil
}

// Online implements presence.Tracker with one pipeline that drops the
// expired entries of each user and counts the rest.
func (p *Tracker) Online(ctx context.Context, userIDs []string) (map[string]bool, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, presence.ErrClosed
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
		return nil, fmt.Errorf("presence: redis lookup: %w", err)
	}
	for id, card := range cards {
		online[id] = card.Val() > 0
	}
	return online, nil
}

// Close stops the heartbeat and removes this node's entries, so that its
// users who have no other node go offline at once (their Disconnect
// reported it, or the caller does: Close reports nothing).
func (p *Tracker) Close() error {
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
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_, err := p.client.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		for _, u := range users {
			pipe.ZRem(ctx, presenceKey(u), p.node)
		}
		pipe.ZRem(ctx, p.nodesKey, p.node)
		pipe.Del(ctx, p.nodeUsersKey(p.node))
		return nil
	})
	if err != nil {
		return fmt.Errorf("presence: redis close: %w", err)
	}
	return nil
}

// heartbeat renews this node's entries every ttl/3 until ctx is done.
func (p *Tracker) heartbeat(ctx context.Context) {
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
		err := errors.Join(p.refresh(ctx), p.sweep(ctx))
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failing = true
			p.log.Warn("presence: heartbeat failed", "err", err)
		case failing:
			failing = false
			p.log.Info("presence: heartbeat restored")
		}
	}
}

// refresh renews the entries of every user connected to this node.
func (p *Tracker) refresh(ctx context.Context) error {
	p.lockAll()
	defer p.unlockAll()
	p.mu.Lock()
	keys := make([]string, 0, len(p.counts))
	for u := range p.counts {
		keys = append(keys, presenceKey(u))
	}
	p.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	expiry := time.Now().Add(p.ttl).UnixMilli()
	for len(keys) > 0 {
		batch := keys[:min(len(keys), refreshBatch)]
		keys = keys[len(batch):]
		if err := refreshScript.Run(ctx, p.client, append([]string{p.nodesKey}, batch...), p.node, expiry, p.ttl.Milliseconds()).Err(); err != nil {
			return fmt.Errorf("refresh %d users: %w", len(batch), err)
		}
	}
	return nil
}

// sweep takes over the entries of nodes that expired and hands the users
// they leave offline to the Watch function, in a goroutine of their own so
// that a slow one does not delay the heartbeat.
func (p *Tracker) sweep(ctx context.Context) error {
	p.mu.Lock()
	lapsed := p.lapsed
	p.mu.Unlock()
	if lapsed == nil {
		return nil
	}
	for {
		nodes, users, err := p.sweepBatch(ctx)
		if err != nil {
			return fmt.Errorf("sweep expired nodes: %w", err)
		}
		if len(users) > 0 {
			p.log.Info("presence: entries of a stopped node expired", "users_offline", len(users))
			go func() {
				for _, u := range users {
					lapsed(u)
				}
			}()
		}
		if nodes < sweepBatch {
			return nil
		}
	}
}

// sweepBatch runs sweepScript once and returns how many nodes it took over
// and the users they left offline.
func (p *Tracker) sweepBatch(ctx context.Context) (nodes int64, users []string, err error) {
	res, err := sweepScript.Run(ctx, p.client, []string{p.nodesKey},
		time.Now().UnixMilli(), sweepBatch, presencePrefix, p.nodeUsersPrefix).Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(res) != 2 {
		return 0, nil, fmt.Errorf("sweep answered %v", res)
	}
	nodes, ok := res[0].(int64)
	list, ok2 := res[1].([]any)
	if !ok || !ok2 {
		return 0, nil, fmt.Errorf("sweep answered %v", res)
	}
	for _, u := range list {
		id, ok := u.(string)
		if !ok {
			return 0, nil, fmt.Errorf("sweep answered user %v", u)
		}
		users = append(users, id)
	}
	return nodes, users, nil
}

// lockAll takes every stripe lock, in order.
func (p *Tracker) lockAll() {
	for i := range p.locks {
		p.locks[i].Lock()
	}
}

// unlockAll releases every stripe lock.
func (p *Tracker) unlockAll() {
	for i := range p.locks {
		p.locks[i].Unlock()
	}
}
