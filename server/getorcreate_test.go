package server_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

const getOrCreate = `mutation($in: CreateChannelInput!) { getOrCreateChannel(input: $in) { id uniqueName friendlyName type membersCount myMembership { role } } }`

// TestGetOrCreateChannel: the channel with the uniqueName when the caller
// may see it, a new one otherwise, one channel under concurrent calls.
func TestGetOrCreateChannel(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		var first, again struct{ GetOrCreateChannel channelData }
		alice.Do(getOrCreate, map[string]any{"in": map[string]any{"uniqueName": "lobby", "friendlyName": "Lobby", "type": "PUBLIC", "members": []string{"carol"}}}, &first)
		ch := first.GetOrCreateChannel
		if ch.ID == "" || *ch.FriendlyName != "Lobby" || ch.Type != "PUBLIC" || ch.MembersCount != 2 || ch.MyMembership.Role != "OWNER" {
			t.Fatalf("created %+v", ch)
		}
		// The existing public channel, for its owner and for another user;
		// the other fields of the input do not apply to it.
		for _, c := range []*parleytest.Client{alice, bob} {
			c.Do(getOrCreate, map[string]any{"in": map[string]any{"uniqueName": "lobby", "friendlyName": "Other", "type": "PRIVATE"}}, &again)
			if got := again.GetOrCreateChannel; got.ID != ch.ID || *got.FriendlyName != "Lobby" || got.Type != "PUBLIC" || got.MembersCount != 2 {
				t.Fatalf("second call returned %+v, want channel %s unchanged", got, ch.ID)
			}
		}
		if again.GetOrCreateChannel.MyMembership != nil {
			t.Fatal("getOrCreateChannel made bob a member of an existing channel")
		}

		// A private channel exists only for its members: to others its
		// name is taken.
		alice.Do(getOrCreate, map[string]any{"in": map[string]any{"uniqueName": "secret", "type": "PRIVATE"}}, &first)
		bob.Fails("CONFLICT", getOrCreate, map[string]any{"in": map[string]any{"uniqueName": "secret", "type": "PRIVATE"}})
		bob.Fails("BAD_USER_INPUT", getOrCreate, map[string]any{"in": map[string]any{"type": "PRIVATE"}})

		// Concurrent first calls create one channel, which all of them get.
		const callers = 8
		ids := make([]string, callers)
		var wg sync.WaitGroup
		for i := range callers {
			c := srv.Client(fmt.Sprintf("racer%d", i))
			wg.Go(func() {
				r := c.Post(getOrCreate, map[string]any{"in": map[string]any{"uniqueName": "race", "type": "PUBLIC"}})
				if len(r.Errors) > 0 {
					t.Errorf("racer %d: %+v", i, r.Errors)
					return
				}
				var out struct{ GetOrCreateChannel channelData }
				decode(t, r, &out)
				ids[i] = out.GetOrCreateChannel.ID
			})
		}
		wg.Wait()
		for i, id := range ids {
			if id != ids[0] {
				t.Fatalf("racer %d got channel %s, racer 0 got %s", i, id, ids[0])
			}
		}
		var n int64
		if err := srv.Store.DB(t.Context()).Table("channels").Where("unique_name = ?", "race").Count(&n).Error; err != nil || n != 1 {
			t.Fatalf("%d channels named race (%v), want 1", n, err)
		}
		var owners int64
		if err := srv.Store.DB(t.Context()).Table("members").Where("channel_id = ?", ids[0]).Count(&owners).Error; err != nil || owners != 1 {
			t.Fatalf("%d members in the raced channel (%v), want its one creator", owners, err)
		}
	})
}
