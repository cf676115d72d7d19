package server_test

import (
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

const (
	inviteMember  = `mutation($c: ID!, $i: String!) { inviteMember(channelId: $c, identity: $i) { id status role } }`
	acceptInvite  = `mutation($c: ID!) { acceptInvite(channelId: $c) { id status } }`
	declineInvite = `mutation($c: ID!) { declineInvite(channelId: $c) }`
)

// TestInvites: an invitee sees the channel's metadata, even of a private
// channel, but not its messages or members until they accept; accepting
// joins (once), declining removes the invitation; membersCount counts
// joined members only.
func TestInvites(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner, bob := srv.Client("owner"), srv.Client("bob")
		srv.Client("bob").Do(`{ me { id } }`, nil, nil)
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE", "friendlyName": "Secret"})
		mustSend(t, owner, ch, "hidden until bob accepts")
		vars := map[string]any{"c": ch}

		bobEvents := srv.Dial(t, "bob").Subscribe(`subscription { channelEvents { type reasons channel { id friendlyName } } }`, nil)
		joined := srv.Dial(t, "owner").Subscribe(`subscription($c: ID!) { memberJoined(channelId: $c) { user { identity } status } }`, vars)
		updated := srv.Dial(t, "owner").Subscribe(`subscription($c: ID!) { memberUpdated(channelId: $c) { reasons member { user { identity } status } } }`, vars)
		ready(t, bobEvents, joined, updated)

		var inv struct {
			InviteMember struct{ ID, Status, Role string }
		}
		owner.Do(inviteMember, map[string]any{"c": ch, "i": "bob"}, &inv)
		if inv.InviteMember.Status != "INVITED" || inv.InviteMember.Role != "MEMBER" {
			t.Fatalf("invitation = %+v", inv)
		}
		var ev channelEventData
		mustJSON(t, bobEvents.Next(t, eventWait), &ev)
		if ev.ChannelEvents.Type != "INVITED" || ev.ChannelEvents.Channel.ID != ch || len(ev.ChannelEvents.Reasons) != 0 {
			t.Fatalf("bob's channel event = %+v", ev)
		}
		owner.Fails("CONFLICT", inviteMember, map[string]any{"c": ch, "i": "bob"})
		owner.Fails("CONFLICT", `mutation($c: ID!) { addMember(channelId: $c, identity: "bob") { id } }`, vars)

		// The invitee sees the metadata, not the messages or members.
		var seen struct {
			Channel struct {
				FriendlyName string
				Status       string
				MembersCount int
				UnreadCount  int
				LastMessage  *struct{ ID string }
				MyMembership struct{ Status string }
			}
		}
		bob.Do(`query($c: ID!) { channel(id: $c) { friendlyName status membersCount unreadCount lastMessage { id } myMembership { status } } }`, vars, &seen)
		if c := seen.Channel; c.FriendlyName != "Secret" || c.Status != "INVITED" || c.MembersCount != 1 || c.UnreadCount != 0 || c.LastMessage != nil || c.MyMembership.Status != "INVITED" {
			t.Fatalf("the invitee sees %+v", c)
		}
		for _, q := range []string{
			`query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }`,
			`query($c: ID!) { members(channelId: $c) { edges { node { id } } } }`,
			`mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "x"}) { id } }`,
			`mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`,
			`mutation($c: ID!) { startTyping(channelId: $c) }`,
		} {
			if msg := bob.Fails("FORBIDDEN", q, vars); !strings.Contains(msg, "invit") {
				t.Errorf("%s: %q does not mention the invitation", q, msg)
			}
		}
		if errs := srv.Dial(t, "bob").Subscribe(messageAddedSub, vars).Err(t, eventWait); errs[0].Code() != "FORBIDDEN" {
			t.Fatalf("an invitee's messageAdded = %+v", errs)
		}
		var list struct {
			Members struct {
				Edges []struct {
					Node struct {
						Status string
						User   struct{ Identity string }
					}
				}
			}
		}
		owner.Do(`query($c: ID!) { members(channelId: $c, status: INVITED) { edges { node { status user { identity } } } } }`, vars, &list)
		if len(list.Members.Edges) != 1 || list.Members.Edges[0].Node.User.Identity != "bob" {
			t.Fatalf("members(status: INVITED) = %+v", list)
		}
		owner.Do(`query($c: ID!) { members(channelId: $c) { edges { node { status user { identity } } } } }`, vars, &list)
		if len(list.Members.Edges) != 1 || list.Members.Edges[0].Node.User.Identity != "owner" {
			t.Fatalf("members (JOINED by default) = %+v", list)
		}

		// Accepting joins, once.
		var acc struct{ AcceptInvite struct{ ID, Status string } }
		bob.Do(acceptInvite, vars, &acc)
		if acc.AcceptInvite.Status != "JOINED" || acc.AcceptInvite.ID != inv.InviteMember.ID {
			t.Fatalf("accepted = %+v", acc)
		}
		bob.Do(acceptInvite, vars, &acc) // again: the same membership, no event
		var j joinedEvent
		mustJSON(t, joined.Next(t, eventWait), &j)
		if j.MemberJoined.User.Identity != "bob" {
			t.Fatalf("memberJoined = %+v", j)
		}
		var u struct {
			MemberUpdated struct {
				Reasons []string
				Member  struct {
					Status string
					User   struct{ Identity string }
				}
			}
		}
		mustJSON(t, updated.Next(t, eventWait), &u)
		if strings.Join(u.MemberUpdated.Reasons, ",") != "STATUS" || u.MemberUpdated.Member.Status != "JOINED" {
			t.Fatalf("memberUpdated = %+v", u)
		}
		mustJSON(t, nextChannelEventExcept(t, bobEvents, "STATUS"), &ev)
		if ev.ChannelEvents.Type != "JOINED" {
			t.Fatalf("bob's event after accepting = %+v", ev)
		}
		joined.NoEvent(t, quiet)
		bob.Do(`query($c: ID!) { channel(id: $c) { friendlyName status membersCount unreadCount lastMessage { id } myMembership { status } } }`, vars, &seen)
		if c := seen.Channel; c.Status != "JOINED" || c.MembersCount != 2 || c.UnreadCount != 1 || c.LastMessage == nil {
			t.Fatalf("after accepting bob sees %+v", c)
		}
		bob.Fails("NOT_FOUND", declineInvite, vars)

		// Declining; joinChannel accepts; a moderator takes one back.
		owner.Do(inviteMember, map[string]any{"c": ch, "i": "carol"}, nil)
		carol := srv.Client("carol")
		var declined struct{ DeclineInvite string }
		carol.Do(declineInvite, vars, &declined)
		if declined.DeclineInvite == "" {
			t.Fatal("declineInvite returned no id")
		}
		carol.Fails("NOT_FOUND", `query($c: ID!) { channel(id: $c) { id } }`, vars)
		carol.Fails("NOT_FOUND", acceptInvite, vars)
		carol.Fails("NOT_FOUND", declineInvite, vars)
		owner.Do(inviteMember, map[string]any{"c": ch, "i": "carol"}, nil)
		var jc struct{ JoinChannel struct{ Status string } }
		carol.Do(`mutation($c: ID!) { joinChannel(channelId: $c) { status } }`, vars, &jc)
		if jc.JoinChannel.Status != "JOINED" {
			t.Fatalf("joinChannel of an invitee = %+v", jc)
		}
		owner.Do(inviteMember, map[string]any{"c": ch, "i": "dave"}, nil)
		owner.Do(`mutation($c: ID!) { removeMember(channelId: $c, identity: "dave") }`, vars, nil)
		srv.Client("dave").Fails("NOT_FOUND", acceptInvite, vars)
		owner.Do(`query($c: ID!) { channel(id: $c) { membersCount } }`, vars, &seen)
		if seen.Channel.MembersCount != 3 {
			t.Fatalf("membersCount = %d, want 3 (owner, bob, carol)", seen.Channel.MembersCount)
		}

		// Concurrent invitations of one user: one succeeds, no duplicate.
		srv.Client("erin").Do(`{ me { id } }`, nil, nil)
		ok, codes := raceCalls(t, 6, owner, inviteMember, map[string]any{"c": ch, "i": "erin"})
		if ok != 1 || len(codes) != 5 || codes[0] != "CONFLICT" {
			t.Fatalf("concurrent invitations: %d ok, others %v", ok, codes)
		}
		srv.Client("member").Fails("NOT_FOUND", inviteMember, map[string]any{"c": ch, "i": "x"})
	})
}
