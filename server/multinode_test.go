package server_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/presence"
	presenceredis "github.com/parleychat/parley/presence/redis"
	"github.com/parleychat/parley/pubsub/pubsubtest"
)

// TestTwoNodes runs two Parley servers on one database, and one Redis or
// one in-process broker (parleytest.MultiNode): what happens on node B
// reaches subscribers on node A — messages, typing and presence.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	nodes := parleytest.MultiNode(t)
	a := parleytest.NewServer(t, nodes, parleytest.Options{})
	b := parleytest.NewServer(t, nodes, parleytest.Options{DatabaseURL: a.DatabaseURL})
	if shared := a.Broker == b.Broker; shared != (nodes.Name == "sqlite") {
		t.Fatalf("%s: the nodes share one broker instance: %v", nodes.Name, shared)
	}
	aliceOnB := b.Client("alice")
	ch := mustCreateChannel(t, aliceOnB, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})

	bobOnA := a.Dial(t, "bob")
	messages := bobOnA.Subscribe(messageAddedSub, map[string]any{"c": ch})
	typing := bobOnA.Subscribe(`subscription($c: ID!) { typingStarted(channelId: $c) { user { identity } } }`, map[string]any{"c": ch})
	presence := bobOnA.Subscribe(`subscription { userUpdated(identity: "alice") { user { online } reasons } }`, nil)
	ready(t, bobOnA)

	for i := range 3 {
		mustSend(t, aliceOnB, ch, fmt.Sprintf("from B %d", i))
	}
	for i := range 3 {
		if ev := nextAdded(t, messages); ev.MessageAdded.Index != i || ev.MessageAdded.Author.Identity != "alice" {
			t.Fatalf("message %d on node A: %+v", i, ev)
		}
	}

	aliceOnB.Do(`mutation($c: ID!) { startTyping(channelId: $c) }`, map[string]any{"c": ch}, nil)
	var ty struct {
		TypingStarted struct{ User struct{ Identity string } }
	}
	mustJSON(t, typing.Next(t, eventWait), &ty)
	if ty.TypingStarted.User.Identity != "alice" {
		t.Fatalf("typing on node A: %+v", ty)
	}

	type userEv struct {
		UserUpdated struct {
			User    struct{ Online bool }
			Reasons []string
		}
	}
	var ev userEv
	aliceWS := b.Dial(t, "alice")
	mustJSON(t, presence.Next(t, eventWait), &ev)
	if !ev.UserUpdated.User.Online {
		t.Fatalf("alice connected on node B; node A sees %+v", ev)
	}
	var me struct{ User struct{ Online bool } }
	a.Client("bob").Do(`{ user(identity: "alice") { online } }`, nil, &me)
	if !me.User.Online {
		t.Fatal("node A does not see alice online")
	}
	aliceWS.Close()
	mustJSON(t, presence.Next(t, eventWait), &ev)
	if ev.UserUpdated.User.Online {
		t.Fatalf("alice left node B; node A sees %+v", ev)
	}
}

// TestTwoNodesCrash: a user connected only to a node that stops without
// closing (here its presence heartbeat stops) goes offline for the other
// nodes once its entries expire, and they publish userUpdated. Only Redis
// presence can lose a node (the in-process tracker has no node to lose),
// so this test needs TEST_REDIS_URL; without TEST_DATABASE_URL its nodes
// share a SQLite database and an in-process broker.
func TestTwoNodesCrash(t *testing.T) {
	t.Parallel()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		t.Skip("needs TEST_REDIS_URL: only Redis presence can lose a node that stops without closing")
	}
	nodes := parleytest.MultiNode(t)
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := goredis.NewClient(o)
	t.Cleanup(func() { _ = client.Close() })
	const ttl = 500 * time.Millisecond
	presence := func(ctx context.Context) presence.Tracker {
		p := presenceredis.New(ctx, client, pubsubtest.Unique("node"), presenceredis.Options{TTL: ttl, Cluster: parleytest.PresenceCluster(t)})
		t.Cleanup(func() {
			if err := p.Close(); err != nil {
				t.Errorf("close presence: %v", err)
			}
		})
		return p
	}
	crashCtx, crash := context.WithCancel(t.Context())
	a := parleytest.NewServer(t, nodes, parleytest.Options{Presence: presence(t.Context())})
	b := parleytest.NewServer(t, nodes, parleytest.Options{DatabaseURL: a.DatabaseURL, Presence: presence(crashCtx)})

	b.Client("alice").Do(`{ me { id } }`, nil, nil) // alice's first sight creates her
	updates := a.Dial(t, "bob").Subscribe(`subscription { userUpdated(identity: "alice") { user { online } reasons } }`, nil)
	ready(t, updates)
	b.Dial(t, "alice")
	var ev struct {
		UserUpdated struct {
			User    struct{ Online bool }
			Reasons []string
		}
	}
	mustJSON(t, updates.Next(t, eventWait), &ev)
	if !ev.UserUpdated.User.Online {
		t.Fatalf("alice connected on node B; node A sees %+v", ev)
	}

	crash()
	mustJSON(t, updates.Next(t, eventWait), &ev)
	if ev.UserUpdated.User.Online || fmt.Sprint(ev.UserUpdated.Reasons) != "[ONLINE]" {
		t.Fatalf("node B stopped; node A sees %+v", ev)
	}
}

// TestTwoNodesTyping: one user's typing calls and messages land on
// different nodes, as behind a load balancer. A message ends the spell at
// once wherever the spell lives, and a spell moves between nodes with one
// typingStarted and no typingEnded while the user keeps typing.
func TestTwoNodesTyping(t *testing.T) {
	// Not parallel: it asserts that typingEnded comes well within the 2 s typing timeout.
	nodes := parleytest.MultiNode(t)
	const timeout = 2 * time.Second
	a := parleytest.NewServer(t, nodes, parleytest.Options{TypingTimeout: timeout})
	b := parleytest.NewServer(t, nodes, parleytest.Options{DatabaseURL: a.DatabaseURL, TypingTimeout: timeout})
	aliceOnA, aliceOnB := a.Client("alice"), b.Client("alice")
	ch := mustCreateChannel(t, aliceOnA, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
	bob := a.Dial(t, "bob")
	vars := map[string]any{"c": ch}
	started := bob.Subscribe(`subscription($c: ID!) { typingStarted(channelId: $c) { user { identity } } }`, vars)
	ended := bob.Subscribe(`subscription($c: ID!) { typingEnded(channelId: $c) { user { identity } } }`, vars)
	ready(t, bob)
	startTyping := func(c *parleytest.Client) {
		c.Do(`mutation($c: ID!) { startTyping(channelId: $c) }`, vars, nil)
	}

	// The spell lives on B; the message is stored by A.
	startTyping(aliceOnB)
	started.Next(t, eventWait)
	time.Sleep(quiet) // B starts watching the channel when the spell starts
	sent := time.Now()
	mustSend(t, aliceOnA, ch, "hi")
	ended.Next(t, eventWait)
	if took := time.Since(sent); took >= timeout/2 {
		t.Fatalf("typingEnded came %v after the message; want at once, not by the %v timeout", took, timeout)
	}

	// The spell starts on B and goes on on A.
	startTyping(aliceOnB)
	started.Next(t, eventWait)
	time.Sleep(quiet)
	first := time.Now()
	time.Sleep(timeout / 2)
	startTyping(aliceOnA)
	started.NoEvent(t, quiet)
	// B's own spell would have ended by first+timeout.
	ended.NoEvent(t, max(time.Until(first.Add(timeout+timeout/4)), 0))
	// A's ends by its timer, timeout after the second call.
	ended.Next(t, eventWait)
}
