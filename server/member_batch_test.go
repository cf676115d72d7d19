package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

const setMemberState = `mutation($cs: [ID!]!, $s: JSON!) { setMemberState(channelIds: $cs, state: $s) { attributes channel { id } } }`

// TestSetMemberState: the caller's member attributes in many channels at
// once, all or nothing, at most 100 channels, one memberUpdated each.
func TestSetMemberState(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		var mine []string
		for range 100 {
			mine = append(mine, mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"}))
		}
		notMine := mustCreateChannel(t, bob, map[string]any{"type": "PUBLIC"})
		invited := mustCreateChannel(t, bob, map[string]any{"type": "PRIVATE"})
		bob.Do(inviteMember, map[string]any{"c": invited, "i": "alice"}, nil)

		updates := srv.Dial(t, "alice").Subscribe(`subscription($c: ID!) { memberUpdated(channelId: $c) { reasons member { attributes } } }`, map[string]any{"c": mine[0]})
		ready(t, updates)
		state := map[string]any{"status": "away", "n": 1}
		var out struct {
			SetMemberState []struct {
				Attributes json.RawMessage
				Channel    struct{ ID string }
			}
		}
		alice.Do(setMemberState, map[string]any{"cs": mine, "s": state}, &out) // at the limit
		if len(out.SetMemberState) != 100 || out.SetMemberState[7].Channel.ID != mine[7] || !sameJSON(string(out.SetMemberState[7].Attributes), `{"status":"away","n":1}`) {
			t.Fatalf("setMemberState returned %d members, the 8th %+v", len(out.SetMemberState), out.SetMemberState[7])
		}
		var ev memberUpdatedData
		mustJSON(t, updates.Next(t, eventWait), &ev)
		if strings.Join(ev.MemberUpdated.Reasons, ",") != "ATTRIBUTES" {
			t.Fatalf("memberUpdated = %+v", ev)
		}

		over := append([]string{notMine}, mine...)
		alice.Fails("BAD_USER_INPUT", setMemberState, map[string]any{"cs": over, "s": map[string]any{"x": 1}})
		for _, bad := range []string{notMine, invited, "no-such-channel"} {
			alice.Fails("NOT_FOUND", setMemberState, map[string]any{"cs": []string{mine[1], bad}, "s": map[string]any{"x": 1}})
		}
		var check struct {
			Channel struct {
				MyMembership struct{ Attributes json.RawMessage }
			}
		}
		alice.Do(`query($c: ID!) { channel(id: $c) { myMembership { attributes } } }`, map[string]any{"c": mine[1]}, &check)
		if !sameJSON(string(check.Channel.MyMembership.Attributes), `{"status":"away","n":1}`) {
			t.Fatalf("a refused setMemberState changed a channel: %s", check.Channel.MyMembership.Attributes)
		}
		updates.NoEvent(t, quiet)
		alice.Do(setMemberState, map[string]any{"cs": []string{mine[2], mine[3], mine[2]}, "s": state}, &out)
		if len(out.SetMemberState) != 2 || out.SetMemberState[1].Channel.ID != mine[3] {
			t.Fatalf("a repeated channel: %+v", out.SetMemberState)
		}
		var empty struct{ SetMemberState []any }
		alice.Do(setMemberState, map[string]any{"cs": []string{}, "s": 1}, &empty)
		if len(empty.SetMemberState) != 0 {
			t.Fatalf("no channels: %+v", empty)
		}
	})
}

const addMembers = `mutation($c: ID!, $m: [AddMemberInput!]!) { addMembers(channelId: $c, members: $m) {
	role access displayName shareHistoryFrom status user { identity } } }`

// TestAddMembers: up to 100 members at once with their roles, access and
// display names, all or nothing.
func TestAddMembers(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner, admin := srv.Client("owner"), srv.Client("admin")
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE"})
		owner.Do(`mutation($c: ID!) { addMember(channelId: $c, identity: "admin", role: ADMIN) { id } }`, map[string]any{"c": ch}, nil)
		joined := srv.Dial(t, "owner").Subscribe(`subscription($c: ID!) { memberJoined(channelId: $c) { user { identity } } }`, map[string]any{"c": ch})
		ready(t, joined)

		list := func(prefix string, n int) []map[string]any {
			var out []map[string]any
			for i := range n {
				out = append(out, map[string]any{"identity": fmt.Sprintf("%s%03d", prefix, i)})
			}
			return out
		}
		over := list("u", 101)
		owner.Fails("BAD_USER_INPUT", addMembers, map[string]any{"c": ch, "m": over})
		dup := list("d", 2)
		dup[1]["identity"] = dup[0]["identity"]
		owner.Fails("BAD_USER_INPUT", addMembers, map[string]any{"c": ch, "m": dup})
		admin.Fails("FORBIDDEN", addMembers, map[string]any{"c": ch, "m": []map[string]any{{"identity": "x", "role": "ADMIN"}}})
		// One member already in: nothing is added.
		withAdmin := append(list("v", 3), map[string]any{"identity": "admin"})
		if msg := owner.Fails("CONFLICT", addMembers, map[string]any{"c": ch, "m": withAdmin}); !strings.Contains(msg, "admin") {
			t.Errorf("CONFLICT %q does not name the member", msg)
		}

		at := list("u", 100)
		at[0]["role"], at[0]["access"], at[0]["displayName"] = "ADMIN", "READ", "First"
		var out struct {
			AddMembers []struct {
				Role, Access, Status string
				DisplayName          *string
				User                 struct{ Identity string }
			}
		}
		owner.Do(addMembers, map[string]any{"c": ch, "m": at}, &out)
		if len(out.AddMembers) != 100 {
			t.Fatalf("added %d, want 100", len(out.AddMembers))
		}
		if m := out.AddMembers[0]; m.Role != "ADMIN" || m.Access != "READ" || m.DisplayName == nil || *m.DisplayName != "First" || m.Status != "JOINED" || m.User.Identity != "u000" {
			t.Fatalf("first added = %+v", m)
		}
		if m := out.AddMembers[99]; m.Role != "MEMBER" || m.Access != "READ_WRITE" || m.DisplayName != nil || m.User.Identity != "u099" {
			t.Fatalf("last added = %+v", m)
		}
		var first joinedEvent
		mustJSON(t, joined.Next(t, eventWait), &first)
		if first.MemberJoined.User.Identity != "u000" {
			t.Fatalf("first memberJoined = %+v", first)
		}
		var got struct{ Channel struct{ MembersCount int } }
		owner.Do(`query($c: ID!) { channel(id: $c) { membersCount } }`, map[string]any{"c": ch}, &got)
		if got.Channel.MembersCount != 102 {
			t.Fatalf("membersCount = %d, want 102", got.Channel.MembersCount)
		}
		var v struct{ Me struct{ ID string } }
		srv.Client("v000").Do(`{ me { id } }`, nil, &v)
		srv.Client("v000").Fails("NOT_FOUND", `query($c: ID!) { channel(id: $c) { id } }`, map[string]any{"c": ch})

		// Racing calls that share a member: one adds, the others CONFLICT.
		ok, codes := raceCalls(t, 5, owner, addMembers, map[string]any{"c": ch, "m": list("r", 3)})
		if ok != 1 {
			t.Fatalf("concurrent addMembers: %d succeeded, others %v", ok, codes)
		}
		for _, c := range codes {
			if c != "CONFLICT" {
				t.Fatalf("a losing addMembers got %s", c)
			}
		}
	})
}
