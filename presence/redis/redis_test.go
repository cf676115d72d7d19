package redis

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/redistest"
	"github.com/parleychat/parley/presence"
	"github.com/parleychat/parley/presence/presencetest"
)

// The tests talk to the Redis server at TEST_REDIS_URL and are skipped when
// it is unset. Other packages' tests may use the same server at the same
// time: every user ID here is unique, presence keys expire, and the nodes
// of one test form a cluster of their own.

// newTracker returns a Tracker of a new node on client, closed in
// t.Cleanup; its heartbeat stops when ctx is done. The nodes of one test
// form a cluster of their own, so that tests running at the same time on
// the same Redis do not take over each other's nodes.
func newTracker(t *testing.T, ctx context.Context, client *goredis.Client, ttl time.Duration) *Tracker {
	t.Helper()
	p := New(ctx, client, presencetest.Unique("node"), Options{TTL: ttl, Cluster: "test:" + t.Name()})
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Tracker Close: %v", err)
		}
	})
	return p
}

func TestTracker(t *testing.T) {
	client := redistest.NewClient(t, redistest.URL(t))
	presencetest.Run(t, func(t *testing.T) presence.Tracker {
		return newTracker(t, t.Context(), client, 0)
	})
}

func TestNewFromURLErrors(t *testing.T) {
	if _, err := NewFromURL(t.Context(), "http://not-redis", "n", Options{}); err == nil {
		t.Fatal("NewFromURL accepted an http URL")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := NewFromURL(ctx, "redis://127.0.0.1:1/0", "n", Options{}); err == nil {
		t.Fatal("NewFromURL succeeded without a server")
	}
}

// TestServerRestart restarts a redis-server of its own (it keeps nothing
// on disk): the heartbeat writes the node's entries again.
func TestServerRestart(t *testing.T) {
	redistest.URL(t)
	srv := redistest.StartServer(t)
	client := redistest.NewClient(t, srv.URL)
	p := newTracker(t, t.Context(), client, time.Second)
	user := presencetest.Unique("user")
	if _, err := p.Connect(t.Context(), user); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	srv.Kill()
	srv.Restart()
	redistest.Eventually(t, 5*time.Second, "user online again", func() bool {
		online, err := p.Online(t.Context(), []string{user})
		return err == nil && online[user]
	})
	// Close before the server stops.
	if err := p.Close(); err != nil {
		t.Errorf("Tracker Close: %v", err)
	}
}

func TestPresenceTwoNodes(t *testing.T) {
	client := redistest.NewClient(t, redistest.URL(t))
	a := newTracker(t, t.Context(), client, 0)
	b := newTracker(t, t.Context(), client, 0)
	u := presencetest.Unique("user")
	expectConnect(t, a, u, true)
	expectConnect(t, b, u, false)
	expectConnect(t, a, u, false)
	ttl, err := client.PTTL(t.Context(), presenceKey(u)).Result()
	if err != nil {
		t.Fatalf("PTTL: %v", err)
	}
	if ttl <= 0 || ttl > defaultTTL {
		t.Fatalf("presence key expires in %v, want (0, %v]", ttl, defaultTTL)
	}
	expectDisconnect(t, a, u, false)
	expectDisconnect(t, a, u, false)
	expectOnline(t, b, u, true)
	expectOnline(t, a, u, true)
	expectDisconnect(t, b, u, true)
	expectOnline(t, a, u, false)
	expectConnect(t, b, u, true)
}

func TestPresenceExpiry(t *testing.T) {
	client := redistest.NewClient(t, redistest.URL(t))
	const ttl = time.Second
	alive := newTracker(t, t.Context(), client, ttl)
	crashCtx, crash := context.WithCancel(t.Context())
	crashed := newTracker(t, crashCtx, client, ttl)
	other := newTracker(t, t.Context(), client, ttl)
	ua, uc := presencetest.Unique("alive"), presencetest.Unique("crashed")
	start := time.Now()
	expectConnect(t, alive, ua, true)
	expectConnect(t, crashed, uc, true)

	// The crashed node's heartbeat stops; its entry is left behind.
	crash()
	expectOnline(t, other, uc, true)
	redistest.Eventually(t, 3*ttl, "crashed node's user offline", func() bool {
		online, err := other.Online(t.Context(), []string{uc})
		if err != nil {
			t.Fatalf("Online: %v", err)
		}
		return !online[uc]
	})
	if elapsed := time.Since(start); elapsed < ttl {
		t.Fatalf("user went offline after %v, before the ttl", elapsed)
	}
	expectConnect(t, other, uc, true)

	// The live node's heartbeat keeps its user online past the ttl.
	time.Sleep(time.Until(start.Add(5 * ttl / 2)))
	expectOnline(t, other, ua, true)
	if err := alive.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	expectOnline(t, other, ua, false)
}

// TestPresenceLapsed: when a node stops without Close, one live node
// reports, once, each user it left with no connection anywhere; users with
// a connection elsewhere, users it had already let go and the users of a
// node that closed are not reported.
func TestPresenceLapsed(t *testing.T) {
	client := redistest.NewClient(t, redistest.URL(t))
	const ttl = 500 * time.Millisecond
	var (
		mu     sync.Mutex
		lapsed = map[string]int{}
	)
	record := func(u string) {
		mu.Lock()
		defer mu.Unlock()
		lapsed[u]++
	}
	count := func(u string) int {
		mu.Lock()
		defer mu.Unlock()
		return lapsed[u]
	}
	// Two watching nodes: each expired node is taken over by one of them.
	b := newTracker(t, t.Context(), client, ttl)
	b.Watch(record)
	c := newTracker(t, t.Context(), client, ttl)
	c.Watch(record)
	crashCtx, crash := context.WithCancel(t.Context())
	crashed := newTracker(t, crashCtx, client, ttl)
	closing := newTracker(t, t.Context(), client, ttl)

	alone, elsewhere, gone, closed := presencetest.Unique("alone"), presencetest.Unique("elsewhere"), presencetest.Unique("gone"), presencetest.Unique("closed")
	expectConnect(t, crashed, alone, true)
	expectConnect(t, crashed, elsewhere, true)
	expectConnect(t, b, elsewhere, false)
	expectConnect(t, crashed, gone, true)
	expectDisconnect(t, crashed, gone, true)
	expectConnect(t, closing, closed, true)
	if err := closing.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	crash()
	redistest.Eventually(t, 6*ttl, "the crashed node's lone user reported", func() bool { return count(alone) > 0 })
	time.Sleep(ttl) // every watcher has swept again since
	for u, want := range map[string]int{alone: 1, elsewhere: 0, gone: 0, closed: 0} {
		if got := count(u); got != want {
			t.Errorf("user %s reported %d times, want %d", u, got, want)
		}
	}
	expectOnline(t, b, elsewhere, true)
	for _, n := range []*Tracker{crashed, closing} {
		if _, err := client.ZScore(t.Context(), n.nodesKey, n.node).Result(); !errors.Is(err, goredis.Nil) {
			t.Errorf("node %s still in %s: %v", n.node, n.nodesKey, err)
		}
		if n, err := client.Exists(t.Context(), n.nodeUsersKey(n.node)).Result(); err != nil || n != 0 {
			t.Errorf("user set of a stopped node: exists %d, %v", n, err)
		}
	}
}

// expectConnect connects u on p and checks first.
func expectConnect(t *testing.T, p *Tracker, u string, want bool) {
	t.Helper()
	first, err := p.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if first != want {
		t.Fatalf("Connect on %s: first = %v, want %v", p.node, first, want)
	}
}

// expectDisconnect disconnects u on p and checks last.
func expectDisconnect(t *testing.T, p *Tracker, u string, want bool) {
	t.Helper()
	last, err := p.Disconnect(t.Context(), u)
	if err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if last != want {
		t.Fatalf("Disconnect on %s: last = %v, want %v", p.node, last, want)
	}
}

// expectOnline checks that p sees u online or not.
func expectOnline(t *testing.T, p *Tracker, u string, want bool) {
	t.Helper()
	online, err := p.Online(t.Context(), []string{u})
	if err != nil {
		t.Fatalf("Online: %v", err)
	}
	if online[u] != want {
		t.Fatalf("Online[%s] = %v, want %v", u, online[u], want)
	}
}
