package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/parleytest"
)

// badInputTables are every table the service writes.
var badInputTables = []string{"users", "channels", "members", "messages", "push_registrations"}

// badInputState is everything stored, table by table, with the row counts
// first, plus the channel's counters as a member sees them.
func badInputState(t *testing.T, srv *parleytest.Server, viewer *parleytest.Client, channelID string) string {
	t.Helper()
	var sb strings.Builder
	db := srv.Store.DB(t.Context())
	for _, table := range badInputTables {
		var n int64
		if err := db.Table(table).Count(&n).Error; err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		fmt.Fprintf(&sb, "%s: %d rows\n", table, n)
	}
	for _, table := range badInputTables {
		var rows []map[string]any
		if err := db.Table(table).Order("id").Find(&rows).Error; err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		b, err := json.Marshal(rows)
		if err != nil {
			t.Fatalf("encode %s: %v", table, err)
		}
		fmt.Fprintf(&sb, "%s: %s\n", table, b)
	}
	r := callOK(t, viewer, `query($c: ID!) { channel(id: $c) { messagesCount lastMessageIndex membersCount uniqueName friendlyName attributes } }`,
		map[string]any{"c": channelID}, nil)
	fmt.Fprintf(&sb, "channel: %s\n", r.Data)
	return sb.String()
}

// badInputDiff shows the lines of two states that differ, from a little
// before their first difference.
func badInputDiff(before, after string) string {
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	var sb strings.Builder
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(b) {
			x = b[i]
		}
		if i < len(a) {
			y = a[i]
		}
		if x == y {
			continue
		}
		from := 0
		for from < len(x) && from < len(y) && x[from] == y[from] {
			from++
		}
		from = max(from-150, 0)
		cut := func(s string) string {
			s = s[min(from, len(s)):]
			if len(s) > 400 {
				s = s[:400] + "…"
			}
			return s
		}
		fmt.Fprintf(&sb, "- …%s\n+ …%s\n", cut(x), cut(y))
	}
	return sb.String()
}

// jsonOfSize returns attributes whose compact encoding is exactly n bytes
// (n >= 8): {"k":"xxx…"}.
func jsonOfSize(n int) map[string]any {
	return map[string]any{"k": strings.Repeat("x", n-8)}
}

// TestBadInput sends every kind of invalid input: each gets BAD_USER_INPUT
// (CONFLICT for a taken uniqueName) with the limit in its message, and
// changes nothing stored. Each limit is also tried exactly at the limit,
// which must pass.
func TestBadInput(t *testing.T) {
	t.Parallel()
	const bad, conflict = "BAD_USER_INPUT", "CONFLICT"
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		var created struct{ CreateChannel channelData }
		callOK(t, alice, createChannel, map[string]any{"in": map[string]any{"uniqueName": "room", "type": "PRIVATE", "members": []string{"bob"}}}, &created)
		ch := created.CreateChannel.ID
		callOK(t, alice, createChannel, map[string]any{"in": map[string]any{"uniqueName": "other", "type": "PUBLIC"}}, &created)
		other := created.CreateChannel.ID
		var sent struct{ SendMessage messageData }
		callOK(t, alice, sendMessage, map[string]any{"c": ch, "b": "hello"}, &sent)
		msg := sent.SendMessage.ID
		callOK(t, bob, `{ me { id } }`, nil, nil)

		// rejects sends an operation that must fail with code, with every
		// part of want in its message, and leave the stored state as it was.
		rejects := func(t *testing.T, c *parleytest.Client, code, query string, vars map[string]any, want ...string) {
			t.Helper()
			before := badInputState(t, srv, alice, ch)
			msg := callFails(t, c, code, query, vars)
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not mention %q", msg, w)
				}
			}
			if after := badInputState(t, srv, alice, ch); after != before {
				t.Errorf("a rejected request changed stored state:\n%s", badInputDiff(before, after))
			}
		}

		const edit = `mutation($id: ID!, $b: String!, $a: JSON) { editMessage(id: $id, body: $b, attributes: $a) { id body } }`
		const updateChannel = `mutation($c: ID!, $in: UpdateChannelInput!) { updateChannel(id: $c, input: $in) { id friendlyName uniqueName } }`
		const updateMe = `mutation($in: UpdateMeInput!) { updateMe(input: $in) { friendlyName } }`
		const markRead = `mutation($c: ID!, $i: Int!) { markRead(channelId: $c, index: $i) { lastReadIndex } }`
		const register = `mutation($t: String!) { registerPush(provider: FCM, token: $t) { id token } }`
		const members = `query($c: ID!, $first: Int, $after: String) { members(channelId: $c, first: $first, after: $after) { edges { cursor node { id } } } }`
		const myChannels = `query($first: Int, $after: String) { myChannels(first: $first, after: $after) { edges { node { id } } } }`
		const publicChannels = `query($first: Int, $after: String) { publicChannels(first: $first, after: $after) { edges { node { id } } } }`

		t.Run("body", func(t *testing.T) {
			rejects(t, alice, bad, sendMessage, map[string]any{"c": ch, "b": ""}, "empty")
			rejects(t, alice, bad, sendMessage, map[string]any{"c": ch, "b": " \t\n "}, "empty")
			var at struct{ SendMessage messageData }
			callOK(t, alice, sendMessage, map[string]any{"c": ch, "b": strings.Repeat("x", 4096)}, &at)
			if len(at.SendMessage.Body) != 4096 {
				t.Errorf("a 4096-byte body came back as %d bytes", len(at.SendMessage.Body))
			}
			rejects(t, alice, bad, sendMessage, map[string]any{"c": ch, "b": strings.Repeat("x", 4097)}, "4097", "4096")
			// The limit is in bytes: 4096 characters of which one takes two bytes.
			rejects(t, alice, bad, sendMessage, map[string]any{"c": ch, "b": strings.Repeat("x", 4095) + "é"}, "4097", "4096")
		})

		t.Run("editMessage body", func(t *testing.T) {
			rejects(t, alice, bad, edit, map[string]any{"id": msg, "b": ""}, "empty")
			rejects(t, alice, bad, edit, map[string]any{"id": msg, "b": "   "}, "empty")
			rejects(t, alice, bad, edit, map[string]any{"id": msg, "b": strings.Repeat("x", 4097)}, "4097", "4096")
			callOK(t, alice, edit, map[string]any{"id": msg, "b": strings.Repeat("y", 4096)}, nil)
		})

		t.Run("attributes", func(t *testing.T) {
			callOK(t, alice, sendMessage, map[string]any{"c": ch, "b": "at the limit", "a": jsonOfSize(16384)}, nil)
			past := jsonOfSize(16385)
			rejects(t, alice, bad, sendMessage, map[string]any{"c": ch, "b": "past the limit", "a": past}, "16385", "16384")
			rejects(t, alice, bad, edit, map[string]any{"id": msg, "b": "x", "a": past}, "16385", "16384")
			rejects(t, alice, bad, createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC", "attributes": past}}, "16385", "16384")
			rejects(t, alice, bad, updateChannel, map[string]any{"c": ch, "in": map[string]any{"attributes": past}}, "16385", "16384")
			rejects(t, alice, bad, updateMe, map[string]any{"in": map[string]any{"attributes": past}}, "16385", "16384")
			callOK(t, alice, updateMe, map[string]any{"in": map[string]any{"attributes": jsonOfSize(16384)}}, nil)
		})

		t.Run("friendlyName", func(t *testing.T) {
			// The limit is in characters: 256 two-byte characters pass.
			at, past := strings.Repeat("é", 256), strings.Repeat("é", 257)
			var c struct{ CreateChannel channelData }
			callOK(t, alice, createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC", "friendlyName": at}}, &c)
			if c.CreateChannel.FriendlyName == nil || *c.CreateChannel.FriendlyName != at {
				t.Errorf("friendlyName of 256 characters came back as %v", c.CreateChannel.FriendlyName)
			}
			rejects(t, alice, bad, createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC", "friendlyName": past}}, "257", "256")
			rejects(t, alice, bad, updateChannel, map[string]any{"c": ch, "in": map[string]any{"friendlyName": past}}, "257", "256")
			callOK(t, alice, updateChannel, map[string]any{"c": ch, "in": map[string]any{"friendlyName": at}}, nil)

			var u struct {
				UpdateMe struct{ FriendlyName *string }
			}
			callOK(t, bob, updateMe, map[string]any{"in": map[string]any{"friendlyName": at}}, &u)
			if u.UpdateMe.FriendlyName == nil || *u.UpdateMe.FriendlyName != at {
				t.Errorf("updateMe friendlyName of 256 characters came back as %v", u.UpdateMe.FriendlyName)
			}
			rejects(t, bob, bad, updateMe, map[string]any{"in": map[string]any{"friendlyName": past}}, "257", "256")
			rejects(t, alice, bad, createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC", "uniqueName": past}}, "257", "256")
		})

		t.Run("uniqueName", func(t *testing.T) {
			for _, name := range []string{"", "   "} {
				rejects(t, alice, bad, createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC", "uniqueName": name}}, "uniqueName")
				rejects(t, alice, bad, updateChannel, map[string]any{"c": ch, "in": map[string]any{"uniqueName": name}}, "uniqueName")
			}
			rejects(t, alice, conflict, createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC", "uniqueName": "room"}}, "room")
			rejects(t, alice, conflict, updateChannel, map[string]any{"c": other, "in": map[string]any{"uniqueName": "room"}}, "room")
			rejects(t, alice, conflict, updateChannel, map[string]any{"c": ch, "in": map[string]any{"uniqueName": "other"}}, "other")
			// Setting a channel's own name again is no conflict.
			callOK(t, alice, updateChannel, map[string]any{"c": ch, "in": map[string]any{"uniqueName": "room"}}, nil)
		})

		t.Run("page size", func(t *testing.T) {
			lists := []struct {
				name, query string
				vars        map[string]any
				arg         string
			}{
				{"messages first", messagesQuery, map[string]any{"c": ch}, "first"},
				{"messages last", messagesQuery, map[string]any{"c": ch}, "last"},
				{"members", members, map[string]any{"c": ch}, "first"},
				{"myChannels", myChannels, map[string]any{}, "first"},
				{"publicChannels", publicChannels, map[string]any{}, "first"},
			}
			for _, l := range lists {
				with := func(n int) map[string]any {
					v := map[string]any{l.arg: n}
					for k, x := range l.vars {
						v[k] = x
					}
					return v
				}
				callOK(t, alice, l.query, with(100), nil)
				callOK(t, alice, l.query, with(0), nil)
				rejects(t, alice, bad, l.query, with(101), "101", "100")
				rejects(t, alice, bad, l.query, with(-1), "negative")
			}
			rejects(t, alice, bad, messagesQuery, map[string]any{"c": ch, "first": 1, "last": 1}, "first or last")
		})

		t.Run("cursor", func(t *testing.T) {
			for _, garbage := range []string{"garbage", "bm90LWEtY3Vyc29y", "!!!"} {
				rejects(t, alice, bad, messagesQuery, map[string]any{"c": ch, "after": garbage}, "cursor")
				rejects(t, alice, bad, messagesQuery, map[string]any{"c": ch, "before": garbage}, "cursor")
				rejects(t, alice, bad, members, map[string]any{"c": ch, "after": garbage}, "cursor")
				rejects(t, alice, bad, myChannels, map[string]any{"after": garbage}, "cursor")
				rejects(t, alice, bad, publicChannels, map[string]any{"after": garbage}, "cursor")
			}
			// A real cursor of another list is no cursor here.
			var m struct {
				Members struct{ Edges []struct{ Cursor string } }
			}
			callOK(t, alice, members, map[string]any{"c": ch, "first": 1}, &m)
			if len(m.Members.Edges) != 1 {
				t.Fatalf("members = %+v", m)
			}
			rejects(t, alice, bad, messagesQuery, map[string]any{"c": ch, "after": m.Members.Edges[0].Cursor}, "cursor")
			rejects(t, alice, bad, publicChannels, map[string]any{"after": m.Members.Edges[0].Cursor}, "cursor")
		})

		t.Run("markRead", func(t *testing.T) {
			var view struct{ Channel channelData }
			callOK(t, alice, `query($c: ID!) { channel(id: $c) { lastMessageIndex } }`, map[string]any{"c": ch}, &view)
			last := *view.Channel.LastMessageIndex
			callOK(t, bob, markRead, map[string]any{"c": ch, "i": last}, nil)
			rejects(t, bob, bad, markRead, map[string]any{"c": ch, "i": last + 1}, fmt.Sprint(last+1), fmt.Sprintf("0 to %d", last))
			rejects(t, bob, bad, markRead, map[string]any{"c": ch, "i": -1}, "-1")
			// A channel without messages has no index to mark.
			rejects(t, alice, bad, markRead, map[string]any{"c": other, "i": 0}, "0")
		})

		t.Run("members list", func(t *testing.T) {
			identities := func(n int) []string {
				out := make([]string, n)
				for i := range out {
					out[i] = fmt.Sprintf("invitee-%03d", i)
				}
				return out
			}
			rejects(t, alice, bad, createChannel, map[string]any{"in": map[string]any{"type": "PRIVATE", "members": identities(101)}}, "101", "100")
			rejects(t, alice, bad, createChannel, map[string]any{"in": map[string]any{"type": "PRIVATE", "members": []string{"ok", " "}}}, "identity")
			var c struct{ CreateChannel channelData }
			callOK(t, alice, createChannel, map[string]any{"in": map[string]any{"type": "PRIVATE", "members": identities(100)}}, &c)
			if c.CreateChannel.MembersCount != 101 {
				t.Errorf("membersCount = %d, want 101", c.CreateChannel.MembersCount)
			}
		})

		t.Run("registerPush", func(t *testing.T) {
			rejects(t, alice, bad, register, map[string]any{"t": ""}, "empty")
			rejects(t, alice, bad, register, map[string]any{"t": "  "}, "empty")
			rejects(t, alice, bad, register, map[string]any{"t": strings.Repeat("t", 513)}, "513", "512")
			callOK(t, alice, register, map[string]any{"t": strings.Repeat("t", 512)}, nil)
		})
	})
}

// TestBadInputConfiguredLimit checks that chat limits come from the options:
// with MaxBodyBytes 10, 10 bytes pass and 11 do not; limits left zero keep
// their defaults.
func TestBadInputConfiguredLimit(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{ChatLimits: chat.Limits{MaxBodyBytes: 10}})
		alice := srv.Client("alice")
		var created struct{ CreateChannel channelData }
		callOK(t, alice, createChannel, map[string]any{"in": map[string]any{"type": "PRIVATE", "friendlyName": strings.Repeat("n", 256)}}, &created)
		ch := created.CreateChannel.ID
		callOK(t, alice, sendMessage, map[string]any{"c": ch, "b": "0123456789"}, nil)
		msg := callFails(t, alice, "BAD_USER_INPUT", sendMessage, map[string]any{"c": ch, "b": "0123456789a"})
		if !strings.Contains(msg, "11") || !strings.Contains(msg, "limit is 10") {
			t.Errorf("message %q does not give the size and the limit", msg)
		}
		var view struct{ Channel channelData }
		callOK(t, alice, `query($c: ID!) { channel(id: $c) { messagesCount lastMessageIndex } }`, map[string]any{"c": ch}, &view)
		if view.Channel.MessagesCount != 1 || view.Channel.LastMessageIndex == nil || *view.Channel.LastMessageIndex != 0 {
			t.Errorf("after one accepted and one rejected message: %+v", view.Channel)
		}
		callOK(t, alice, messagesQuery, map[string]any{"c": ch, "last": 100}, nil)
		callFails(t, alice, "BAD_USER_INPUT", messagesQuery, map[string]any{"c": ch, "last": 101})
	})
}
