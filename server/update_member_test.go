package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

const updateMember = `mutation($c: ID!, $i: String!, $in: UpdateMemberInput!) { updateMember(channelId: $c, identity: $i, input: $in) {
	role access displayName attributes user { identity } } }`

type memberUpdatedData struct {
	MemberUpdated struct {
		Reasons []string
		Member  struct {
			Role, Access string
			DisplayName  *string
			User         struct{ Identity string }
		}
	}
}

// TestUpdateMember: who may change what of a membership, the ownership
// hand-over, and the memberUpdated reasons each change publishes.
func TestUpdateMember(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		clients := map[string]*parleytest.Client{}
		for _, id := range []string{"owner", "admin", "admin2", "member", "member2"} {
			clients[id] = srv.Client(id)
		}
		ch := mustCreateChannel(t, clients["owner"], map[string]any{"type": "PRIVATE", "members": []string{"member", "member2"}})
		clients["owner"].Do(`mutation($c: ID!) { a: addMember(channelId: $c, identity: "admin", role: ADMIN) { id }
			b: addMember(channelId: $c, identity: "admin2", role: ADMIN) { id } }`, map[string]any{"c": ch}, nil)
		updates := srv.Dial(t, "member2").Subscribe(`subscription($c: ID!) { memberUpdated(channelId: $c) {
			reasons member { role access displayName user { identity } } } }`, map[string]any{"c": ch})
		ready(t, updates)
		next := func() memberUpdatedData {
			var ev memberUpdatedData
			mustJSON(t, updates.Next(t, eventWait), &ev)
			return ev
		}
		call := func(who, target string, in map[string]any) *parleytest.Response {
			return clients[who].Post(updateMember, map[string]any{"c": ch, "i": target, "in": in})
		}
		for _, c := range []struct {
			who, target string
			in          map[string]any
			want        string // "" for success, else the code
			reasons     string // of the memberUpdated event on success; "" for none
		}{
			{"member", "member", map[string]any{"displayName": "Me"}, "", "DISPLAY_NAME"},
			{"member", "member", map[string]any{"attributes": map[string]any{"a": 1}}, "", "ATTRIBUTES"},
			{"member", "member", map[string]any{"attributesPatch": map[string]any{"b": 2}}, "", "ATTRIBUTES"},
			{"member", "member", map[string]any{"attributes": map[string]any{}, "attributesPatch": map[string]any{}}, "BAD_USER_INPUT", ""},
			{"member", "member", map[string]any{"displayName": strings.Repeat("n", 257)}, "BAD_USER_INPUT", ""},
			{"member", "member", map[string]any{"role": "MEMBER"}, "", ""}, // no change: no event
			{"member", "member", map[string]any{"role": "ADMIN"}, "FORBIDDEN", ""},
			{"member", "member", map[string]any{"access": "READ"}, "FORBIDDEN", ""},
			{"member", "member2", map[string]any{"displayName": "You"}, "FORBIDDEN", ""},
			{"admin", "member", map[string]any{"access": "READ", "displayName": "Quiet"}, "", "ACCESS,DISPLAY_NAME"},
			{"admin", "member", map[string]any{"role": "ADMIN"}, "FORBIDDEN", ""},
			{"admin", "admin2", map[string]any{"access": "READ"}, "FORBIDDEN", ""},
			{"admin", "owner", map[string]any{"displayName": "Boss"}, "FORBIDDEN", ""},
			{"admin", "nobody", map[string]any{"displayName": "x"}, "NOT_FOUND", ""},
			{"owner", "member", map[string]any{"role": "ADMIN", "access": "READ_WRITE"}, "", "ROLE,ACCESS"},
			{"owner", "member", map[string]any{"role": "MEMBER"}, "", "ROLE"},
			{"owner", "admin2", map[string]any{"role": "MEMBER"}, "", "ROLE"},
			{"owner", "owner", map[string]any{"role": "ADMIN"}, "FORBIDDEN", ""},
			{"owner", "member", map[string]any{"role": "BOSS"}, "GRAPHQL_VALIDATION_FAILED", ""},
		} {
			r := call(c.who, c.target, c.in)
			if c.want != "" {
				if r.Code() != c.want {
					t.Fatalf("%s updates %s with %v: %+v, want %s", c.who, c.target, c.in, r.Errors, c.want)
				}
				continue
			}
			if len(r.Errors) > 0 {
				t.Fatalf("%s updates %s with %v: %+v", c.who, c.target, c.in, r.Errors)
			}
			if c.reasons == "" {
				continue
			}
			if ev := next().MemberUpdated; strings.Join(ev.Reasons, ",") != c.reasons || ev.Member.User.Identity != c.target {
				t.Fatalf("%s updates %s with %v: event %+v, want reasons %s", c.who, c.target, c.in, ev, c.reasons)
			}
		}
		var m struct {
			UpdateMember struct{ Attributes json.RawMessage }
		}
		clients["member"].Do(updateMember, map[string]any{"c": ch, "i": "member", "in": map[string]any{}}, &m)
		if !sameJSON(string(m.UpdateMember.Attributes), `{"a":1,"b":2}`) {
			t.Fatalf("attributes after a patch = %s", m.UpdateMember.Attributes)
		}

		// Handing ownership over: two memberUpdated(ROLE).
		clients["owner"].Do(updateMember, map[string]any{"c": ch, "i": "admin", "in": map[string]any{"role": "OWNER"}}, nil)
		got := map[string]string{}
		for range 2 {
			ev := next().MemberUpdated
			if strings.Join(ev.Reasons, ",") != "ROLE" {
				t.Fatalf("hand-over event %+v", ev)
			}
			got[ev.Member.User.Identity] = ev.Member.Role
		}
		if got["admin"] != "OWNER" || got["owner"] != "ADMIN" {
			t.Fatalf("after the hand-over: %v", got)
		}
		clients["owner"].Fails("FORBIDDEN", `mutation($c: ID!) { deleteChannel(id: $c) }`, map[string]any{"c": ch})
		clients["admin"].Do(`mutation($c: ID!) { setChannelState(id: $c, state: ACTIVE) { id } }`, map[string]any{"c": ch}, nil)
		// Ownership goes to joined members only.
		clients["admin"].Do(`mutation($c: ID!) { inviteMember(channelId: $c, identity: "guest") { id } }`, map[string]any{"c": ch}, nil)
		clients["admin"].Fails("FORBIDDEN", updateMember, map[string]any{"c": ch, "i": "guest", "in": map[string]any{"role": "OWNER"}})
		clients["admin"].Do(updateMember, map[string]any{"c": ch, "i": "guest", "in": map[string]any{"role": "ADMIN"}}, nil)
	})
}

// TestReadAccess: a READ member reads, subscribes and marks read; sending,
// editing and typing are FORBIDDEN.
func TestReadAccess(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner, reader := srv.Client("owner"), srv.Client("reader")
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE"})
		var added struct {
			AddMembers []struct{ Access string }
		}
		owner.Do(`mutation($c: ID!) { addMembers(channelId: $c, members: [{identity: "reader", access: READ}]) { access } }`, map[string]any{"c": ch}, &added)
		if len(added.AddMembers) != 1 || added.AddMembers[0].Access != "READ" {
			t.Fatalf("addMembers = %+v", added)
		}
		vars := map[string]any{"c": ch}
		sub := srv.Dial(t, "reader").Subscribe(messageAddedSub, vars)
		ready(t, sub)
		mustSend(t, owner, ch, "for readers")
		if ev := nextAdded(t, sub); ev.MessageAdded.Body != "for readers" {
			t.Fatalf("reader got %+v", ev)
		}
		reader.Do(messagesQuery, vars, nil)
		reader.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, vars, nil)
		for _, q := range []string{
			`mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "x"}) { id } }`,
			`mutation($c: ID!) { startTyping(channelId: $c) }`,
		} {
			if msg := reader.Fails("FORBIDDEN", q, vars); !strings.Contains(msg, "READ") {
				t.Errorf("%s: %q does not name the access", q, msg)
			}
		}
		// A message the reader wrote before losing write access.
		owner.Do(updateMember, map[string]any{"c": ch, "i": "reader", "in": map[string]any{"access": "READ_WRITE"}}, nil)
		own := mustSend(t, reader, ch, "mine")
		owner.Do(updateMember, map[string]any{"c": ch, "i": "reader", "in": map[string]any{"access": "READ"}}, nil)
		reader.Fails("FORBIDDEN", `mutation($id: ID!) { editMessage(id: $id, body: "edited") { id } }`, map[string]any{"id": own.ID})
		reader.Do(`mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": own.ID}, nil)
	})
}
