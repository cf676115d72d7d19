package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

// callOK sends an operation as c that must succeed and decodes its data into
// out (when not nil). Unlike Client.Do it fails t, so it is safe in subtests.
func callOK(t *testing.T, c *parleytest.Client, query string, vars map[string]any, out any) *parleytest.Response {
	t.Helper()
	r := c.Post(query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("%s\nunexpected errors: %+v", strings.TrimSpace(query), r.Errors)
	}
	if out != nil {
		decode(t, r, out)
	}
	return r
}

// callFails sends an operation as c that must fail with code and returns the
// first error's message. Unlike Client.Fails it fails t, so it is safe in
// subtests.
func callFails(t *testing.T, c *parleytest.Client, code, query string, vars map[string]any) string {
	t.Helper()
	r := c.Post(query, vars)
	if len(r.Errors) == 0 {
		t.Errorf("%s\nwant error %s, got data %s", strings.TrimSpace(query), code, r.Data)
		return ""
	}
	if r.Code() != code {
		t.Errorf("%s\nwant error %s, got %+v", strings.TrimSpace(query), code, r.Errors)
	}
	return r.Errors[0].Message
}

// permFixture is a channel as TestPermissions needs it: created by "owner",
// with "admin" and "admin2" as ADMINs, "member" as MEMBER and one message by
// "member".
type permFixture struct {
	channel, uniqueName, message string
}

func newPermFixture(t *testing.T, clients map[string]*parleytest.Client, typ string, n int) permFixture {
	t.Helper()
	f := permFixture{uniqueName: fmt.Sprintf("perm-%s-%d", strings.ToLower(typ), n)}
	var created struct{ CreateChannel channelData }
	callOK(t, clients["owner"], createChannel, map[string]any{"in": map[string]any{
		"type": typ, "uniqueName": f.uniqueName, "members": []string{"member"},
	}}, &created)
	f.channel = created.CreateChannel.ID
	callOK(t, clients["owner"], `mutation($c: ID!) {
		a: addMember(channelId: $c, identity: "admin", role: ADMIN) { id }
		b: addMember(channelId: $c, identity: "admin2", role: ADMIN) { id } }`, map[string]any{"c": f.channel}, nil)
	var sent struct{ SendMessage messageData }
	callOK(t, clients["member"], sendMessage, map[string]any{"c": f.channel, "b": "hello"}, &sent)
	f.message = sent.SendMessage.ID
	return f
}

// permState is the owner's full view of a fixture, to show that a refused
// operation changed nothing.
func permState(t *testing.T, owner *parleytest.Client, f permFixture) string {
	t.Helper()
	r := callOK(t, owner, `query($c: ID!) {
		channel(id: $c) { uniqueName friendlyName attributes membersCount messagesCount lastMessageIndex }
		messages(channelId: $c) { edges { node { index body attributes editedAt deletedAt } } }
		members(channelId: $c) { edges { node { role lastReadIndex user { identity } } } } }`, map[string]any{"c": f.channel}, nil)
	return string(r.Data)
}

// TestPermissions checks every channel operation for every kind of caller on
// a PUBLIC and a PRIVATE channel: a private channel does not exist for a
// non-member (NOT_FOUND, never FORBIDDEN), a public channel's metadata is for
// everyone and its messages and members for members only, roles gate writes,
// and an anonymous caller is UNAUTHENTICATED everywhere.
func TestPermissions(t *testing.T) {
	const (
		ok        = "ok"
		unauth    = "UNAUTHENTICATED"
		forbidden = "FORBIDDEN"
		notFound  = "NOT_FOUND"
		conflict  = "CONFLICT"
	)
	// Columns of pub and priv, in this order.
	actors := []string{"owner", "admin", "member", "outsider", "anonymous"}
	type row [5]string
	chanVars := func(f permFixture) map[string]any { return map[string]any{"c": f.channel} }
	msgVars := func(f permFixture) map[string]any { return map[string]any{"id": f.message} }

	ops := []struct {
		name    string
		field   string // the top-level field, non-null on success
		query   string
		vars    func(permFixture) map[string]any
		mutates bool // runs on a fixture of its own
		pub     row
		priv    row
	}{
		{"channel", "channel", `query($c: ID!) { channel(id: $c) { id } }`, chanVars, false,
			row{ok, ok, ok, ok, unauth}, row{ok, ok, ok, notFound, unauth}},
		{"channelByUniqueName", "channelByUniqueName", `query($u: String!) { channelByUniqueName(uniqueName: $u) { id } }`,
			func(f permFixture) map[string]any { return map[string]any{"u": f.uniqueName} }, false,
			row{ok, ok, ok, ok, unauth}, row{ok, ok, ok, notFound, unauth}},
		// The existing channel when the caller may see it; a private
		// channel's name is taken for everyone else.
		{"getOrCreateChannel", "getOrCreateChannel", `mutation($u: String!) { getOrCreateChannel(input: {uniqueName: $u}) { id } }`,
			func(f permFixture) map[string]any { return map[string]any{"u": f.uniqueName} }, false,
			row{ok, ok, ok, ok, unauth}, row{ok, ok, ok, conflict, unauth}},
		{"messages", "messages", `query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }`, chanVars, false,
			row{ok, ok, ok, forbidden, unauth}, row{ok, ok, ok, notFound, unauth}},
		{"members", "members", `query($c: ID!) { members(channelId: $c) { edges { node { id } } } }`, chanVars, false,
			row{ok, ok, ok, forbidden, unauth}, row{ok, ok, ok, notFound, unauth}},
		{"sendMessage", "sendMessage", `mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "hi"}) { id } }`, chanVars, true,
			row{ok, ok, ok, forbidden, unauth}, row{ok, ok, ok, notFound, unauth}},
		// A message is visible to members only, so a non-member does not
		// find it, also in a public channel.
		{"editMessage", "editMessage", `mutation($id: ID!) { editMessage(id: $id, body: "edited") { id } }`, msgVars, true,
			row{forbidden, forbidden, ok, notFound, unauth}, row{forbidden, forbidden, ok, notFound, unauth}},
		{"deleteMessage", "deleteMessage", `mutation($id: ID!) { deleteMessage(id: $id) { id } }`, msgVars, true,
			row{ok, ok, ok, notFound, unauth}, row{ok, ok, ok, notFound, unauth}},
		{"updateChannel", "updateChannel", `mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "renamed"}) { id } }`, chanVars, true,
			row{ok, ok, forbidden, forbidden, unauth}, row{ok, ok, forbidden, notFound, unauth}},
		{"deleteChannel", "deleteChannel", `mutation($c: ID!) { deleteChannel(id: $c) }`, chanVars, true,
			row{ok, forbidden, forbidden, forbidden, unauth}, row{ok, forbidden, forbidden, notFound, unauth}},
		{"joinChannel", "joinChannel", `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, chanVars, true,
			row{ok, ok, ok, ok, unauth}, row{ok, ok, ok, notFound, unauth}},
		{"addMember", "addMember", `mutation($c: ID!) { addMember(channelId: $c, identity: "newcomer") { id } }`, chanVars, true,
			row{ok, ok, forbidden, forbidden, unauth}, row{ok, ok, forbidden, notFound, unauth}},
		{"addMember(ADMIN)", "addMember", `mutation($c: ID!) { addMember(channelId: $c, identity: "newcomer", role: ADMIN) { id } }`, chanVars, true,
			row{ok, forbidden, forbidden, forbidden, unauth}, row{ok, forbidden, forbidden, notFound, unauth}},
		{"addMember(OWNER)", "addMember", `mutation($c: ID!) { addMember(channelId: $c, identity: "newcomer", role: OWNER) { id } }`, chanVars, true,
			row{ok, forbidden, forbidden, forbidden, unauth}, row{ok, forbidden, forbidden, notFound, unauth}},
		// The member removing themself is leaving.
		{"removeMember(member)", "removeMember", `mutation($c: ID!) { removeMember(channelId: $c, identity: "member") }`, chanVars, true,
			row{ok, ok, ok, forbidden, unauth}, row{ok, ok, ok, notFound, unauth}},
		{"removeMember(admin2)", "removeMember", `mutation($c: ID!) { removeMember(channelId: $c, identity: "admin2") }`, chanVars, true,
			row{ok, forbidden, forbidden, forbidden, unauth}, row{ok, forbidden, forbidden, notFound, unauth}},
		// The owner removing themself is leaving.
		{"removeMember(owner)", "removeMember", `mutation($c: ID!) { removeMember(channelId: $c, identity: "owner") }`, chanVars, true,
			row{ok, forbidden, forbidden, forbidden, unauth}, row{ok, forbidden, forbidden, notFound, unauth}},
		{"markRead", "markRead", `mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, chanVars, true,
			row{ok, ok, ok, forbidden, unauth}, row{ok, ok, ok, notFound, unauth}},
		// Leaving a channel one is not in: there is no such membership.
		{"leaveChannel", "leaveChannel", `mutation($c: ID!) { leaveChannel(channelId: $c) }`, chanVars, true,
			row{ok, ok, ok, notFound, unauth}, row{ok, ok, ok, notFound, unauth}},
	}

	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		clients := map[string]*parleytest.Client{"anonymous": srv.Client("")}
		for _, id := range []string{"owner", "admin", "admin2", "member", "outsider"} {
			clients[id] = srv.Client(id)
			callOK(t, clients[id], `{ me { id } }`, nil, nil) // every user exists before the first fixture
		}
		n := 0
		for _, typ := range []string{"PUBLIC", "PRIVATE"} {
			n++
			shared := newPermFixture(t, clients, typ, n)
			for _, op := range ops {
				want := op.pub
				if typ == "PRIVATE" {
					want = op.priv
				}
				for i, actor := range actors {
					t.Run(typ+"/"+op.name+"/"+actor, func(t *testing.T) {
						f := shared
						var before string
						if op.mutates && actor != "anonymous" {
							n++
							f = newPermFixture(t, clients, typ, n)
							if want[i] != ok {
								before = permState(t, clients["owner"], f)
							}
						}
						r := clients[actor].Post(op.query, op.vars(f))
						if want[i] == ok {
							if len(r.Errors) > 0 {
								t.Fatalf("want ok, got %+v", r.Errors)
							}
							var data map[string]json.RawMessage
							decode(t, r, &data)
							if v, found := data[op.field]; !found || string(v) == "null" {
								t.Fatalf("want %s in the data, got %s", op.field, r.Data)
							}
							return
						}
						if len(r.Errors) == 0 {
							t.Fatalf("want %s, got data %s", want[i], r.Data)
						}
						if got := r.Code(); got != want[i] {
							t.Fatalf("want %s, got %s: %+v", want[i], got, r.Errors)
						}
						var data map[string]json.RawMessage
						decode(t, r, &data)
						if v, found := data[op.field]; found && string(v) != "null" {
							t.Errorf("a refused operation returned data %s", r.Data)
						}
						if before != "" {
							if after := permState(t, clients["owner"], f); after != before {
								t.Errorf("a refused %s changed the channel:\nbefore %s\nafter  %s", op.name, before, after)
							}
						}
					})
				}
			}
		}

		// Operations outside a channel: no token, no access.
		t.Run("anonymous/elsewhere", func(t *testing.T) {
			anon := clients["anonymous"]
			var before int64
			if err := srv.Store.DB(t.Context()).Table("users").Count(&before).Error; err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`{ me { id } }`,
				`{ user(identity: "owner") { id } }`,
				`{ myChannels { edges { node { id } } } }`,
				`{ publicChannels { edges { node { id } } } }`,
				`{ myPushRegistrations { id } }`,
				`{ session { identity } }`,
				`mutation { refreshSession(token: "x") { identity } }`,
				`mutation { getOrCreateChannel(input: {uniqueName: "anon"}) { id } }`,
				`mutation { createChannel(input: {type: PUBLIC, uniqueName: "anon"}) { id } }`,
				`mutation { updateMe(input: {friendlyName: "anon"}) { id } }`,
				`mutation { registerPush(provider: FCM, token: "anon") { id } }`,
				`mutation { unregisterPush(provider: FCM, token: "anon") }`,
				`mutation { clearPushRegistrations }`,
			} {
				callFails(t, anon, unauth, q, nil)
			}
			var after, channels int64
			db := srv.Store.DB(t.Context())
			if err := db.Table("users").Count(&after).Error; err != nil || after != before {
				t.Errorf("users %d → %d (%v): an anonymous request made a user", before, after, err)
			}
			if err := db.Table("channels").Where("unique_name = ?", "anon").Count(&channels).Error; err != nil || channels != 0 {
				t.Errorf("an anonymous createChannel made %d channels (%v)", channels, err)
			}
		})
	})
}
