package server_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

type joinedEvent struct {
	MemberJoined struct{ User struct{ Identity string } }
}

// raceCalls runs call concurrently n times as c and returns how many
// succeeded and the codes of the others.
func raceCalls(t *testing.T, n int, c *parleytest.Client, query string, vars map[string]any) (int, []string) {
	t.Helper()
	var (
		mu    sync.Mutex
		ok    int
		codes []string
		wg    sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			r := c.Post(query, vars)
			mu.Lock()
			defer mu.Unlock()
			if len(r.Errors) == 0 {
				ok++
			} else {
				codes = append(codes, r.Code())
			}
		})
	}
	wg.Wait()
	return ok, codes
}

// TestMembershipRaces: of concurrent addMember calls for one identity one
// succeeds, the others get CONFLICT, and one memberJoined is published;
// concurrent joinChannel calls all return the membership and publish one
// memberJoined.
func TestMembershipRaces(t *testing.T) {
	t.Parallel()
	const racers, rounds = 8, 5
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner := srv.Client("owner")
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PUBLIC"})
		vars := map[string]any{"c": ch}
		joined := srv.Dial(t, "owner").Subscribe(`subscription($c: ID!) { memberJoined(channelId: $c) { user { identity } } }`, vars)
		ready(t, joined)
		next := func() string {
			var ev joinedEvent
			mustJSON(t, joined.Next(t, eventWait), &ev)
			return ev.MemberJoined.User.Identity
		}
		// A marker ends each round: an event before it that is not the
		// round's one would be a duplicate.
		marker := func(identity string) {
			owner.Do(`mutation($c: ID!, $i: String!) { addMember(channelId: $c, identity: $i) { id } }`, map[string]any{"c": ch, "i": identity}, nil)
		}

		for round := range rounds {
			identity := fmt.Sprintf("bob%d", round)
			// An existing user: a new one's insert would queue the racers.
			srv.Client(identity).Do(`{ me { id } }`, nil, nil)
			ok, codes := raceCalls(t, racers, owner, `mutation($c: ID!, $i: String!) { addMember(channelId: $c, identity: $i) { id } }`, map[string]any{"c": ch, "i": identity})
			if ok != 1 {
				t.Fatalf("%d concurrent addMember calls succeeded (others %v), want 1", ok, codes)
			}
			for _, c := range codes {
				if c != "CONFLICT" {
					t.Fatalf("a losing addMember got %s, want CONFLICT", c)
				}
			}
			marker(identity + "-marker")
			if first, second := next(), next(); first != identity || second != identity+"-marker" {
				t.Fatalf("memberJoined events %q, %q; want %s once, then the marker", first, second, identity)
			}
		}

		carol := srv.Client("carol")
		ok, codes := raceCalls(t, racers, carol, `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, vars)
		if ok != racers {
			t.Fatalf("%d of %d concurrent joinChannel calls succeeded: %v", ok, racers, codes)
		}
		marker("marker2")
		if first, second := next(), next(); first != "carol" || second != "marker2" {
			t.Fatalf("memberJoined events %q, %q; want carol once, then the marker", first, second)
		}
		var got struct{ Channel struct{ MembersCount int } }
		owner.Do(`query($c: ID!) { channel(id: $c) { membersCount } }`, vars, &got)
		if want := 2 + 2*rounds + 1; got.Channel.MembersCount != want {
			t.Fatalf("membersCount = %d, want %d", got.Channel.MembersCount, want)
		}
	})
}
