package server_test

import (
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

const setState = `mutation($c: ID!, $s: ChannelState!) { setChannelState(id: $c, state: $s) { id state } }`

type channelEventData struct {
	ChannelEvents struct {
		Type    string
		Reasons []string
		Channel struct {
			ID    string
			State string
		}
	}
}

// TestChannelState: setChannelState is for ADMINs and the OWNER; a CLOSED
// channel refuses sending, editing, typing, joining and new members with
// FORBIDDEN naming the state, while reading and markRead go on; a message
// sent into an INACTIVE channel makes it ACTIVE and says so.
func TestChannelState(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner, member := srv.Client("owner"), srv.Client("member")
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PUBLIC", "members": []string{"member"}})
		vars := func(state string) map[string]any { return map[string]any{"c": ch, "s": state} }
		msg := mustSend(t, member, ch, "before")

		var got struct{ Channel struct{ State string } }
		owner.Do(`query($c: ID!) { channel(id: $c) { state } }`, map[string]any{"c": ch}, &got)
		if got.Channel.State != "ACTIVE" {
			t.Fatalf("a new channel is %s", got.Channel.State)
		}
		member.Fails("FORBIDDEN", setState, vars("CLOSED"))
		outsider := srv.Client("outsider")
		outsider.Fails("FORBIDDEN", setState, vars("CLOSED"))
		var status struct{ Channel struct{ Status string } }
		outsider.Do(`query($c: ID!) { channel(id: $c) { status } }`, map[string]any{"c": ch}, &status)
		if status.Channel.Status != "NOT_PARTICIPATING" {
			t.Fatalf("an outsider's status = %s", status.Channel.Status)
		}
		member.Do(`query($c: ID!) { channel(id: $c) { status } }`, map[string]any{"c": ch}, &status)
		if status.Channel.Status != "JOINED" {
			t.Fatalf("a member's status = %s", status.Channel.Status)
		}

		events := srv.Dial(t, "member").Subscribe(`subscription { channelEvents { type reasons channel { id state } } }`, nil)
		ready(t, events)
		nextEvent := func() channelEventData {
			var ev channelEventData
			mustJSON(t, nextChannelEventExcept(t, events, "LAST_MESSAGE", "LAST_READ"), &ev)
			return ev
		}

		owner.Do(setState, vars("CLOSED"), nil)
		if ev := nextEvent().ChannelEvents; ev.Type != "UPDATED" || strings.Join(ev.Reasons, ",") != "STATE" || ev.Channel.State != "CLOSED" {
			t.Fatalf("closing: %+v", ev)
		}
		owner.Do(setState, vars("CLOSED"), nil) // no change, no event
		for _, c := range []struct {
			name  string
			who   *parleytest.Client
			query string
			vars  map[string]any
		}{
			{"sendMessage", member, sendMessage, map[string]any{"c": ch, "b": "after"}},
			{"editMessage", member, `mutation($id: ID!) { editMessage(id: $id, body: "edited") { id } }`, map[string]any{"id": msg.ID}},
			{"startTyping", member, `mutation($c: ID!) { startTyping(channelId: $c) }`, map[string]any{"c": ch}},
			{"joinChannel", srv.Client("newcomer"), `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": ch}},
			{"addMember", owner, `mutation($c: ID!) { addMember(channelId: $c, identity: "x") { id } }`, map[string]any{"c": ch}},
			{"inviteMember", owner, `mutation($c: ID!) { inviteMember(channelId: $c, identity: "x") { id } }`, map[string]any{"c": ch}},
			{"addMembers", owner, `mutation($c: ID!) { addMembers(channelId: $c, members: [{identity: "x"}]) { id } }`, map[string]any{"c": ch}},
		} {
			if msg := c.who.Fails("FORBIDDEN", c.query, c.vars); !strings.Contains(msg, "CLOSED") {
				t.Errorf("%s: %q does not name the state", c.name, msg)
			}
		}
		// Reading, markRead and moderation go on.
		var hist messagesData
		member.Do(messagesQuery, map[string]any{"c": ch}, &hist)
		if len(hist.Messages.Edges) != 1 {
			t.Fatalf("messages in a CLOSED channel: %+v", hist)
		}
		member.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, map[string]any{"c": ch}, nil)
		member.Do(`mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": ch}, nil) // already a member
		owner.Do(`mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": msg.ID}, nil)

		// INACTIVE takes messages and becomes ACTIVE with the first.
		owner.Do(setState, vars("INACTIVE"), nil)
		if ev := nextEvent().ChannelEvents; ev.Channel.State != "INACTIVE" || strings.Join(ev.Reasons, ",") != "STATE" {
			t.Fatalf("deactivating: %+v", ev)
		}
		mustSend(t, member, ch, "wakes it up")
		if ev := nextEvent().ChannelEvents; ev.Type != "UPDATED" || strings.Join(ev.Reasons, ",") != "STATE" || ev.Channel.State != "ACTIVE" {
			t.Fatalf("after a message into an INACTIVE channel: %+v", ev)
		}
		mustSend(t, member, ch, "already active")
		owner.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "marker"}) { id } }`, map[string]any{"c": ch}, nil)
		if ev := nextEvent().ChannelEvents; strings.Join(ev.Reasons, ",") != "FRIENDLY_NAME" {
			t.Fatalf("a second message changed the state again, or the rename came as %+v", ev)
		}
		owner.Do(`query($c: ID!) { channel(id: $c) { state } }`, map[string]any{"c": ch}, &got)
		if got.Channel.State != "ACTIVE" {
			t.Fatalf("state after sending = %s", got.Channel.State)
		}
	})
}
