package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// sweepEvery is how often a keyed forgets its idle buckets, at most.
const sweepEvery = time.Minute

// keyed is a token bucket per key. A bucket is made on first use; one that
// has been idle long enough to be full again is forgotten, at most
// sweepEvery after, since a fresh bucket is the same. It is safe for
// concurrent use.
type keyed struct {
	limit rate.Limit
	burst int
	off   bool
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

func newKeyed(r Rate, now func() time.Time) *keyed {
	k := &keyed{off: r.Off(), now: now, buckets: map[string]*rate.Limiter{}, lastSweep: now()}
	if !k.off {
		k.limit = rate.Limit(float64(r.Events) / r.Per.Seconds())
		k.burst = max(r.Burst, 1)
	}
	return k
}

// allow takes n tokens (at most the burst) from key's bucket when it holds
// them; otherwise it takes none and says how long until it would.
func (k *keyed) allow(key string, n int) (bool, time.Duration) {
	if k.off {
		return true, 0
	}
	n = min(n, k.burst)
	now := k.now()
	k.mu.Lock()
	if now.Sub(k.lastSweep) >= sweepEvery {
		k.sweepLocked(now)
	}
	defer k.mu.Unlock()
	b, ok := k.buckets[key]
	if !ok {
		b = rate.NewLimiter(k.limit, k.burst)
		k.buckets[key] = b
	}
	if b.AllowN(now, n) {
		return true, 0
	}
	missing := float64(n) - b.TokensAt(now)
	return false, time.Duration(missing / float64(k.limit) * float64(time.Second))
}

// sweepLocked forgets the buckets that are full: they hold nothing a fresh
// bucket would not.
func (k *keyed) sweepLocked(now time.Time) {
	for key, b := range k.buckets {
		if b.TokensAt(now) >= float64(k.burst) {
			delete(k.buckets, key)
		}
	}
	k.lastSweep = now
}

// size is how many buckets k holds.
func (k *keyed) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// counter caps how many holders each key has at once; a key without
// holders takes no memory. A max of zero or less is no cap. It is safe for
// concurrent use.
type counter struct {
	max    int
	mu     sync.Mutex
	counts map[string]int
}

func newCounter(max int) *counter { return &counter{max: max, counts: map[string]int{}} }

// acquire adds a holder of key, unless it has max already; release
// removes it, once however often it is called.
func (c *counter) acquire(key string) (release func(), ok bool) {
	if c.max <= 0 {
		return func() {}, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts[key] >= c.max {
		return nil, false
	}
	c.counts[key]++
	return sync.OnceFunc(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.counts[key]--; c.counts[key] <= 0 {
			delete(c.counts, key)
		}
	}), true
}

// size is how many keys have holders.
func (c *counter) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.counts)
}
