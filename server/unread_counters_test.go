package server_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

// TestUnreadCountersUnderConcurrentChanges: members send with mentions,
// delete their messages, move their read horizons back and forth, clear
// them, mark everything read, leave and join again, and an admin imports
// history, all at once. The
// counters behind unreadCount and unreadSummary must agree with the
// messages afterwards: parleytest checks every membership against a count
// of the messages when the server stops, and this test checks what bob
// sees against the history he reads.
func TestUnreadCountersUnderConcurrentChanges(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{SystemMessages: true})
		names := []string{"alice", "bob", "carol", "dave"}
		clients := make([]*parleytest.Client, len(names))
		for i, n := range names {
			clients[i] = srv.Client(n)
		}
		channels := []string{
			mustCreateChannel(t, clients[0], map[string]any{"type": "PUBLIC", "members": names[1:]}),
			mustCreateChannel(t, clients[0], map[string]any{"type": "PUBLIC", "members": names[1:]}),
		}
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(i), 7))
				var mine []string
				for range 40 {
					ch := channels[r.IntN(len(channels))]
					var resp *parleytest.Response
					switch op := r.IntN(10); {
					case op < 4:
						mentions := []string{names[r.IntN(len(names))], names[r.IntN(len(names))]}
						if mentions[0] == mentions[1] {
							mentions = mentions[:1]
						}
						resp = c.Post(`mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }`,
							map[string]any{"in": map[string]any{"channelId": ch, "body": "hi", "mentions": mentions}})
						if resp.Code() == "BAD_USER_INPUT" { // carol, who has left
							resp = nil
							break
						}
						var out struct{ SendMessage struct{ ID string } }
						if len(resp.Errors) == 0 && json.Unmarshal(resp.Data, &out) == nil {
							mine = append(mine, out.SendMessage.ID)
						}
					case op < 5 && len(mine) > 0:
						k := r.IntN(len(mine))
						resp = c.Post(`mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": mine[k]})
						mine = append(mine[:k], mine[k+1:]...)
					case op < 7:
						var index any
						if r.IntN(4) > 0 {
							index = r.IntN(8)
						}
						resp = c.Post(`mutation($c: ID!, $i: Int) { setReadHorizon(channelId: $c, index: $i) { id } }`,
							map[string]any{"c": ch, "i": index})
						if resp.Code() == "BAD_USER_INPUT" { // an index not yet written
							resp = nil
						}
					case op < 8:
						resp = c.Post(`mutation { markAllRead }`, nil)
					case op < 9 && i == 2:
						resp = c.Post(`mutation($c: ID!) { leaveChannel(channelId: $c) }`, map[string]any{"c": ch})
						if resp.Code() == "NOT_FOUND" || resp.Code() == "FAILED_PRECONDITION" { // not a member now
							resp = nil
						}
						if resp == nil || len(resp.Errors) == 0 {
							resp = c.Post(`mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": ch})
						}
					default:
						resp = c.Post(`mutation($c: ID!) { markRead(channelId: $c, index: 3) { id } }`, map[string]any{"c": ch})
						if resp.Code() == "BAD_USER_INPUT" {
							resp = nil
						}
					}
					if resp != nil && len(resp.Errors) > 0 {
						t.Errorf("%s: %+v", names[i], resp.Errors)
						return
					}
				}
			}()
		}
		// An admin imports history meanwhile, written by a member: it
		// recounts every membership of the channel.
		admin := srv.AdminClient("ops")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 6 {
				in := []map[string]any{{"author": "dave", "body": "old", "createdAt": "2020-01-01T00:00:00Z"}}
				resp := admin.Post(`mutation($c: ID!, $m: [ImportMessageInput!]!) { importMessages(channelId: $c, messages: $m) }`,
					map[string]any{"c": channels[k%len(channels)], "m": in})
				if len(resp.Errors) > 0 {
					t.Errorf("import: %+v", resp.Errors)
					return
				}
			}
		}()
		wg.Wait()

		// What bob's counters say, against his history and horizon.
		bob := clients[1]
		total := 0
		for _, ch := range channels {
			var out struct {
				Channel struct {
					UnreadCount  int
					MyMembership *struct{ LastReadIndex *int }
				}
				Messages struct {
					Edges []struct {
						Node struct {
							Index     int
							Type      string
							DeletedAt *string
							Author    *struct{ Identity string }
						}
					}
				}
			}
			callOK(t, bob, `query($c: ID!) { channel(id: $c) { unreadCount myMembership { lastReadIndex } }
				messages(channelId: $c, last: 100) { edges { node { index type deletedAt author { identity } } } } }`,
				map[string]any{"c": ch}, &out)
			if len(out.Messages.Edges) == 100 {
				t.Fatalf("more than a page of history in %s: make the test write less", ch)
			}
			from := 0
			if h := out.Channel.MyMembership.LastReadIndex; h != nil {
				from = *h + 1
			}
			want := 0
			for _, e := range out.Messages.Edges {
				m := e.Node
				if m.Index >= from && m.DeletedAt == nil && m.Type != "SYSTEM" && (m.Author == nil || m.Author.Identity != "bob") {
					want++
				}
			}
			if out.Channel.UnreadCount != want {
				t.Errorf("bob's unreadCount in %s: %d, his history says %d", ch, out.Channel.UnreadCount, want)
			}
			total += want
		}
		if got := unreadSummaryOf(t, bob); got[1] != total {
			t.Errorf("bob's unreadSummary %v, his history says %d messages", got, total)
		}
	})
}

// TestUnreadCountersMigration: migration 00010 fills the counters of a
// database that had none from its messages: after going down to 00009 and
// up again, every count reads as before.
func TestUnreadCountersMigration(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{SystemMessages: true})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		one := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "members": []string{"bob"}})
		two := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "members": []string{"bob"}})
		for i := range 5 {
			mustSendInput(t, alice, map[string]any{"channelId": one, "body": fmt.Sprint(i), "mentions": []string{"bob"}})
		}
		mustSend(t, bob, one, "mine")
		gone := mustSendInput(t, alice, map[string]any{"channelId": one, "body": "gone", "mentions": []string{"bob"}})
		mustSendInput(t, alice, map[string]any{"channelId": one, "body": "last", "mentions": []string{"bob"}})
		callOK(t, alice, `mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": gone.ID}, nil)
		callOK(t, bob, `mutation($c: ID!) { setReadHorizon(channelId: $c, index: 2) { id } }`, map[string]any{"c": one}, nil)
		mustSend(t, alice, two, "two")

		counts := func() [5]int {
			var out struct {
				A, B struct{ UnreadCount, UnreadMentionsCount int }
			}
			callOK(t, bob, `query($a: ID!, $b: ID!) { a: channel(id: $a) { unreadCount unreadMentionsCount }
				b: channel(id: $b) { unreadCount unreadMentionsCount } }`, map[string]any{"a": one, "b": two}, &out)
			s := unreadSummaryOf(t, bob)
			return [5]int{out.A.UnreadCount, out.A.UnreadMentionsCount, out.B.UnreadCount, s[1], s[2]}
		}
		// In one: messages 3 and 4 (the system messages, bob's own and
		// the deleted one never count) and "last"; in two, "two".
		before := counts()
		if before != [5]int{3, 3, 1, 4, 3} {
			t.Fatalf("counts before the migration %v", before)
		}
		if _, err := srv.Store.MigrateDownTo(t.Context(), 9); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Store.MigrateUp(t.Context()); err != nil {
			t.Fatal(err)
		}
		if after := counts(); after != before {
			t.Errorf("counts after going down and up %v, before %v", after, before)
		}
	})
}
