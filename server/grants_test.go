package server_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/parleytest"
)

// TestGrants: a token with a channels claim sees only the channels it
// names, by uniqueName or id (NOT_FOUND for the others, in lookups, lists
// and events), and a "read" grant reads but does not write.
func TestGrants(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		general := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "uniqueName": "general"})
		news := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "uniqueName": "news"})
		other := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "uniqueName": "other"})
		private := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})
		own := mustSend(t, alice, news, "mine")

		tok := srv.TokenWith("alice", map[string]auth.Access{"general": auth.Write, "news": auth.Read, "newroom": auth.Write}, time.Hour)
		limited := srv.ClientWithToken(tok)

		for _, c := range []string{other, private} {
			vars := map[string]any{"c": c}
			limited.Fails("NOT_FOUND", `query($c: ID!) { channel(id: $c) { id } }`, vars)
			limited.Fails("NOT_FOUND", `query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }`, vars)
			limited.Fails("NOT_FOUND", `query($c: ID!) { members(channelId: $c) { edges { node { id } } } }`, vars)
			limited.Fails("NOT_FOUND", sendMessage, map[string]any{"c": c, "b": "hi"})
			limited.Fails("NOT_FOUND", `mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, vars)
			limited.Fails("NOT_FOUND", `mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "x"}) { id } }`, vars)
		}
		limited.Fails("NOT_FOUND", `{ channelByUniqueName(uniqueName: "other") { id } }`, nil)

		listIDs := func(query string) []string {
			var out map[string]struct {
				Edges []struct{ Node struct{ ID string } }
			}
			limited.Do(query, nil, &out)
			var ids []string
			for _, conn := range out {
				for _, e := range conn.Edges {
					ids = append(ids, e.Node.ID)
				}
			}
			slices.Sort(ids)
			return ids
		}
		want := []string{general, news}
		slices.Sort(want)
		for _, q := range []string{`{ myChannels { edges { node { id } } } }`, `{ publicChannels { edges { node { id } } } }`} {
			if got := listIDs(q); !slices.Equal(got, want) {
				t.Fatalf("%s = %v, want %v", q, got, want)
			}
		}

		// "read": reading and markRead work, writing does not.
		newsVars := map[string]any{"c": news}
		limited.Do(`query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }`, newsVars, nil)
		limited.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, newsVars, nil)
		limited.Fails("FORBIDDEN", sendMessage, map[string]any{"c": news, "b": "hi"})
		limited.Fails("FORBIDDEN", `mutation($c: ID!) { startTyping(channelId: $c) }`, newsVars)
		limited.Fails("FORBIDDEN", `mutation($id: ID!) { editMessage(id: $id, body: "edited") { id } }`, map[string]any{"id": own.ID})
		mustSend(t, limited, general, "written")

		// A new channel must be one the token names.
		limited.Fails("FORBIDDEN", createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC", "uniqueName": "elsewhere"}})
		limited.Fails("FORBIDDEN", createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC"}})
		limited.Fails("FORBIDDEN", getOrCreate, map[string]any{"in": map[string]any{"type": "PUBLIC", "uniqueName": "elsewhere"}})
		newroom := mustCreateChannel(t, limited, map[string]any{"type": "PRIVATE", "uniqueName": "newroom"})
		want = append(want, newroom)
		slices.Sort(want)
		if got := listIDs(`{ myChannels { edges { node { id } } } }`); !slices.Equal(got, want) {
			t.Fatalf("myChannels after creating newroom = %v, want %v", got, want)
		}

		// A DIRECT channel has no uniqueName: a limited token reaches one
		// that exists by its id, and cannot create one.
		direct := mustDirect(t, alice, "bob").ID
		limited.Fails("NOT_FOUND", directChannel, map[string]any{"i": "bob"})
		limited.Fails("FORBIDDEN", directChannel, map[string]any{"i": "carol"})
		byDirect := srv.ClientWithToken(srv.TokenWith("alice", map[string]auth.Access{direct: auth.Write}, time.Hour))
		if got := mustDirect(t, byDirect, "bob"); got.ID != direct {
			t.Fatalf("directChannel through a grant of its id = %s, want %s", got.ID, direct)
		}

		// A grant by id.
		byID := srv.ClientWithToken(srv.TokenWith("alice", map[string]auth.Access{other: auth.Read}, time.Hour))
		byID.Do(`query($c: ID!) { channel(id: $c) { id } }`, map[string]any{"c": other}, nil)
		byID.Fails("NOT_FOUND", `query($c: ID!) { channel(id: $c) { id } }`, map[string]any{"c": general})

		// Events: a subscription outside the grants is NOT_FOUND, and the
		// caller-wide ones leave the other channels out.
		ws := srv.Dial(t, "", parleytest.WithInitPayload(map[string]any{"authorization": "Bearer " + tok}))
		if errs := ws.Subscribe(messageAddedSub, map[string]any{"c": other}).Err(t, eventWait); errs[0].Code() != "NOT_FOUND" {
			t.Fatalf("messageAdded(other) = %+v", errs)
		}
		all := ws.Subscribe(messageAddedSub, nil)
		events := ws.Subscribe(`subscription { channelEvents { type channel { id } } }`, nil)
		ready(t, ws)
		mustSend(t, alice, other, "not for the limited token")
		mustSend(t, alice, general, "for it")
		if ev := nextAdded(t, all); ev.MessageAdded.Channel.ID != general {
			t.Fatalf("messageAdded without channelId delivered %+v, want only granted channels", ev)
		}
		alice.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "x"}) { id } }`, map[string]any{"c": other}, nil)
		alice.Do(`mutation($c: ID!) { addMember(channelId: $c, identity: "bob") { id } }`, map[string]any{"c": private}, nil)
		alice.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "y"}) { id } }`, map[string]any{"c": general}, nil)
		var ev struct {
			ChannelEvents struct {
				Type    string
				Channel struct{ ID string }
			}
		}
		if err := json.Unmarshal(events.Next(t, eventWait), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ChannelEvents.Channel.ID != general || ev.ChannelEvents.Type != "UPDATED" {
			t.Fatalf("channelEvents delivered %+v, want only general's update", ev)
		}
	})
}
