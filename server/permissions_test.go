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
// with "admin" and "admin2" as ADMINs, "member" as MEMBER, "reader" as a
// MEMBER with READ access, "invitee" invited, and one message by "member";
// for the CLOSED kind, a PUBLIC channel closed after all that.
type permFixture struct {
	channel, uniqueName, message string
}

func newPermFixture(t *testing.T, clients map[string]*parleytest.Client, kind string, n int) permFixture {
	t.Helper()
	typ := kind
	if kind == "CLOSED" {
		typ = "PUBLIC"
	}
	f := permFixture{uniqueName: fmt.Sprintf("perm-%s-%d", strings.ToLower(kind), n)}
	var created struct{ CreateChannel channelData }
	callOK(t, clients["owner"], createChannel, map[string]any{"in": map[string]any{
		"type": typ, "uniqueName": f.uniqueName, "members": []string{"member"},
	}}, &created)
	f.channel = created.CreateChannel.ID
	callOK(t, clients["owner"], `mutation($c: ID!) {
		a: addMember(channelId: $c, identity: "admin", role: ADMIN) { id }
		b: addMember(channelId: $c, identity: "admin2", role: ADMIN) { id }
		r: addMembers(channelId: $c, members: [{identity: "reader", access: READ}]) { id }
		i: inviteMember(channelId: $c, identity: "invitee") { id } }`, map[string]any{"c": f.channel}, nil)
	var sent struct{ SendMessage messageData }
	callOK(t, clients["member"], sendMessage, map[string]any{"c": f.channel, "b": "hello"}, &sent)
	f.message = sent.SendMessage.ID
	if kind == "CLOSED" {
		callOK(t, clients["owner"], `mutation($c: ID!) { setChannelState(id: $c, state: CLOSED) { id } }`, map[string]any{"c": f.channel}, nil)
	}
	return f
}

// permState is the owner's full view of a fixture, to show that a refused
// operation changed nothing.
func permState(t *testing.T, owner *parleytest.Client, f permFixture) string {
	t.Helper()
	r := callOK(t, owner, `query($c: ID!) {
		channel(id: $c) { uniqueName friendlyName attributes state membersCount messagesCount lastMessageIndex }
		messages(channelId: $c) { edges { node { index body attributes editedAt deletedAt } } }
		members(channelId: $c) { edges { node { role access displayName attributes lastReadIndex user { identity } } } }
		invited: members(channelId: $c, status: INVITED) { edges { node { role user { identity } } } } }`, map[string]any{"c": f.channel}, nil)
	return string(r.Data)
}

// TestPermissions checks every channel operation for every kind of caller on
// a PUBLIC, a PRIVATE and a CLOSED (public) channel: a private channel does
// not exist for a non-member (NOT_FOUND, never FORBIDDEN), a public channel's
// metadata is for everyone and its messages and members for members only,
// an invitee sees the metadata only, a READ member reads but does not
// write, roles gate writes, a CLOSED channel takes no messages or members,
// and an anonymous caller is UNAUTHENTICATED everywhere.
func TestPermissions(t *testing.T) {
	t.Parallel()
	const (
		ok        = "ok"
		unauth    = "UNAUTHENTICATED"
		forbidden = "FORBIDDEN"
		notFound  = "NOT_FOUND"
		conflict  = "CONFLICT"
	)
	// Columns of pub, priv and closed, in this order.
	actors := []string{"owner", "admin", "member", "reader", "invitee", "outsider", "anonymous"}
	type row [7]string
	chanVars := func(f permFixture) map[string]any { return map[string]any{"c": f.channel} }
	msgVars := func(f permFixture) map[string]any { return map[string]any{"id": f.message} }
	// Short names keep each row on one line.
	const (
		f_ = forbidden
		nf = notFound
		u_ = unauth
	)

	ops := []struct {
		name    string
		field   string // the top-level field, non-null on success
		query   string
		vars    func(permFixture) map[string]any
		mutates bool // runs on a fixture of its own
		pub     row
		priv    row
		closed  row
	}{
		{"channel", "channel", `query($c: ID!) { channel(id: $c) { id } }`, chanVars, false,
			row{ok, ok, ok, ok, ok, ok, u_}, row{ok, ok, ok, ok, ok, nf, u_}, row{ok, ok, ok, ok, ok, ok, u_}},
		{"channelByUniqueName", "channelByUniqueName", `query($u: String!) { channelByUniqueName(uniqueName: $u) { id } }`,
			func(f permFixture) map[string]any { return map[string]any{"u": f.uniqueName} }, false,
			row{ok, ok, ok, ok, ok, ok, u_}, row{ok, ok, ok, ok, ok, nf, u_}, row{ok, ok, ok, ok, ok, ok, u_}},
		// The existing channel when the caller may see it; a private
		// channel's name is taken for everyone else.
		{"getOrCreateChannel", "getOrCreateChannel", `mutation($u: String!) { getOrCreateChannel(input: {uniqueName: $u}) { id } }`,
			func(f permFixture) map[string]any { return map[string]any{"u": f.uniqueName} }, false,
			row{ok, ok, ok, ok, ok, ok, u_}, row{ok, ok, ok, ok, ok, conflict, u_}, row{ok, ok, ok, ok, ok, ok, u_}},
		{"messages", "messages", `query($c: ID!) { messages(channelId: $c) { edges { node { id } } } }`, chanVars, false,
			row{ok, ok, ok, ok, f_, f_, u_}, row{ok, ok, ok, ok, f_, nf, u_}, row{ok, ok, ok, ok, f_, f_, u_}},
		{"members", "members", `query($c: ID!) { members(channelId: $c) { edges { node { id } } } }`, chanVars, false,
			row{ok, ok, ok, ok, f_, f_, u_}, row{ok, ok, ok, ok, f_, nf, u_}, row{ok, ok, ok, ok, f_, f_, u_}},
		{"sendMessage", "sendMessage", `mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "hi"}) { id } }`, chanVars, true,
			row{ok, ok, ok, f_, f_, f_, u_}, row{ok, ok, ok, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		{"startTyping", "startTyping", `mutation($c: ID!) { startTyping(channelId: $c) }`, chanVars, false,
			row{ok, ok, ok, f_, f_, f_, u_}, row{ok, ok, ok, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		// A message is visible to (joined) members only, so a non-member
		// does not find it, also in a public channel.
		{"editMessage", "editMessage", `mutation($id: ID!) { editMessage(id: $id, body: "edited") { id } }`, msgVars, true,
			row{f_, f_, ok, f_, nf, nf, u_}, row{f_, f_, ok, f_, nf, nf, u_}, row{f_, f_, f_, f_, nf, nf, u_}},
		{"deleteMessage", "deleteMessage", `mutation($id: ID!) { deleteMessage(id: $id) { id } }`, msgVars, true,
			row{ok, ok, ok, f_, nf, nf, u_}, row{ok, ok, ok, f_, nf, nf, u_}, row{ok, ok, ok, f_, nf, nf, u_}},
		{"updateChannel", "updateChannel", `mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "renamed"}) { id } }`, chanVars, true,
			row{ok, ok, f_, f_, f_, f_, u_}, row{ok, ok, f_, f_, f_, nf, u_}, row{ok, ok, f_, f_, f_, f_, u_}},
		{"setChannelState", "setChannelState", `mutation($c: ID!) { setChannelState(id: $c, state: INACTIVE) { id } }`, chanVars, true,
			row{ok, ok, f_, f_, f_, f_, u_}, row{ok, ok, f_, f_, f_, nf, u_}, row{ok, ok, f_, f_, f_, f_, u_}},
		{"deleteChannel", "deleteChannel", `mutation($c: ID!) { deleteChannel(id: $c) }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{ok, f_, f_, f_, f_, f_, u_}},
		// A member joining again gets their membership; an invitee joining
		// accepts the invitation.
		{"joinChannel", "joinChannel", `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, chanVars, true,
			row{ok, ok, ok, ok, ok, ok, u_}, row{ok, ok, ok, ok, ok, nf, u_}, row{ok, ok, ok, ok, f_, f_, u_}},
		{"addMember", "addMember", `mutation($c: ID!) { addMember(channelId: $c, identity: "newcomer") { id } }`, chanVars, true,
			row{ok, ok, f_, f_, f_, f_, u_}, row{ok, ok, f_, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		{"addMember(ADMIN)", "addMember", `mutation($c: ID!) { addMember(channelId: $c, identity: "newcomer", role: ADMIN) { id } }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		{"addMember(OWNER)", "addMember", `mutation($c: ID!) { addMember(channelId: $c, identity: "newcomer", role: OWNER) { id } }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		{"addMembers", "addMembers", `mutation($c: ID!) { addMembers(channelId: $c, members: [{identity: "newcomer"}]) { id } }`, chanVars, true,
			row{ok, ok, f_, f_, f_, f_, u_}, row{ok, ok, f_, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		{"addMembers(ADMIN)", "addMembers", `mutation($c: ID!) { addMembers(channelId: $c, members: [{identity: "newcomer", role: ADMIN}]) { id } }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		{"inviteMember", "inviteMember", `mutation($c: ID!) { inviteMember(channelId: $c, identity: "newcomer") { id } }`, chanVars, true,
			row{ok, ok, f_, f_, f_, f_, u_}, row{ok, ok, f_, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		{"inviteMember(ADMIN)", "inviteMember", `mutation($c: ID!) { inviteMember(channelId: $c, identity: "newcomer", role: ADMIN) { id } }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		// A joined member accepting again gets their membership.
		{"acceptInvite", "acceptInvite", `mutation($c: ID!) { acceptInvite(channelId: $c) { id } }`, chanVars, true,
			row{ok, ok, ok, ok, ok, nf, u_}, row{ok, ok, ok, ok, ok, nf, u_}, row{ok, ok, ok, ok, f_, nf, u_}},
		{"declineInvite", "declineInvite", `mutation($c: ID!) { declineInvite(channelId: $c) }`, chanVars, true,
			row{nf, nf, nf, nf, ok, nf, u_}, row{nf, nf, nf, nf, ok, nf, u_}, row{nf, nf, nf, nf, ok, nf, u_}},
		// The member removing themself is leaving.
		{"removeMember(member)", "removeMember", `mutation($c: ID!) { removeMember(channelId: $c, identity: "member") }`, chanVars, true,
			row{ok, ok, ok, f_, f_, f_, u_}, row{ok, ok, ok, f_, f_, nf, u_}, row{ok, ok, ok, f_, f_, f_, u_}},
		{"removeMember(admin2)", "removeMember", `mutation($c: ID!) { removeMember(channelId: $c, identity: "admin2") }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{ok, f_, f_, f_, f_, f_, u_}},
		// The owner removing themself is leaving.
		{"removeMember(owner)", "removeMember", `mutation($c: ID!) { removeMember(channelId: $c, identity: "owner") }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{ok, f_, f_, f_, f_, f_, u_}},
		// A member's own displayName: theirs, or a moderator's above them.
		{"updateMember(member displayName)", "updateMember", `mutation($c: ID!) { updateMember(channelId: $c, identity: "member", input: {displayName: "M"}) { id } }`, chanVars, true,
			row{ok, ok, ok, f_, f_, f_, u_}, row{ok, ok, ok, f_, f_, nf, u_}, row{ok, ok, ok, f_, f_, f_, u_}},
		// Access: a moderator's, never the member's own.
		{"updateMember(member access)", "updateMember", `mutation($c: ID!) { updateMember(channelId: $c, identity: "member", input: {access: READ}) { id } }`, chanVars, true,
			row{ok, ok, f_, f_, f_, f_, u_}, row{ok, ok, f_, f_, f_, nf, u_}, row{ok, ok, f_, f_, f_, f_, u_}},
		// Only the OWNER takes ADMIN.
		{"updateMember(admin2 role)", "updateMember", `mutation($c: ID!) { updateMember(channelId: $c, identity: "admin2", input: {role: MEMBER}) { id } }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{ok, f_, f_, f_, f_, f_, u_}},
		// Handing ownership over: the OWNER only.
		{"updateMember(member OWNER)", "updateMember", `mutation($c: ID!) { updateMember(channelId: $c, identity: "member", input: {role: OWNER}) { id } }`, chanVars, true,
			row{ok, f_, f_, f_, f_, f_, u_}, row{ok, f_, f_, f_, f_, nf, u_}, row{ok, f_, f_, f_, f_, f_, u_}},
		{"setMemberState", "setMemberState", `mutation($c: ID!) { setMemberState(channelIds: [$c], state: {away: true}) { id } }`, chanVars, true,
			row{ok, ok, ok, ok, nf, nf, u_}, row{ok, ok, ok, ok, nf, nf, u_}, row{ok, ok, ok, ok, nf, nf, u_}},
		{"markRead", "markRead", `mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, chanVars, true,
			row{ok, ok, ok, ok, f_, f_, u_}, row{ok, ok, ok, ok, f_, nf, u_}, row{ok, ok, ok, ok, f_, f_, u_}},
		{"setReadHorizon", "setReadHorizon", `mutation($c: ID!) { setReadHorizon(channelId: $c, index: 0) { id } }`, chanVars, true,
			row{ok, ok, ok, ok, f_, f_, u_}, row{ok, ok, ok, ok, f_, nf, u_}, row{ok, ok, ok, ok, f_, f_, u_}},
		{"setReadHorizon(null)", "setReadHorizon", `mutation($c: ID!) { setReadHorizon(channelId: $c, index: null) { id } }`, chanVars, true,
			row{ok, ok, ok, ok, f_, f_, u_}, row{ok, ok, ok, ok, f_, nf, u_}, row{ok, ok, ok, ok, f_, f_, u_}},
		{"sendMessage(location, mentions, clientMessageId)", "sendMessage",
			`mutation($c: ID!) { sendMessage(input: {channelId: $c, location: {latitude: 1, longitude: 2}, mentions: ["owner"], clientMessageId: "x"}) { id } }`, chanVars, true,
			row{ok, ok, ok, f_, f_, f_, u_}, row{ok, ok, ok, f_, f_, nf, u_}, row{f_, f_, f_, f_, f_, f_, u_}},
		{"editMessage(attributesPatch)", "editMessage", `mutation($id: ID!) { editMessage(id: $id, attributesPatch: {k: 1}) { id } }`, msgVars, true,
			row{f_, f_, ok, f_, nf, nf, u_}, row{f_, f_, ok, f_, nf, nf, u_}, row{f_, f_, f_, f_, nf, nf, u_}},
		// Leaving a channel one is not in: there is no such membership. An
		// invitee leaving declines.
		{"leaveChannel", "leaveChannel", `mutation($c: ID!) { leaveChannel(channelId: $c) }`, chanVars, true,
			row{ok, ok, ok, ok, ok, nf, u_}, row{ok, ok, ok, ok, ok, nf, u_}, row{ok, ok, ok, ok, ok, nf, u_}},
	}
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		clients := map[string]*parleytest.Client{"anonymous": srv.Client("")}
		for _, id := range []string{"owner", "admin", "admin2", "member", "reader", "invitee", "outsider"} {
			clients[id] = srv.Client(id)
			callOK(t, clients[id], `{ me { id } }`, nil, nil) // every user exists before the first fixture
		}
		// The kinds run in parallel, each on fixtures of its own; they
		// start once the anonymous subtest below is done.
		for _, typ := range []string{"PUBLIC", "PRIVATE", "CLOSED"} {
			t.Run(typ, func(t *testing.T) {
				t.Parallel()
				n := 1
				shared := newPermFixture(t, clients, typ, n)
				for _, op := range ops {
					want := map[string]row{"PUBLIC": op.pub, "PRIVATE": op.priv, "CLOSED": op.closed}[typ]
					for i, actor := range actors {
						t.Run(op.name+"/"+actor, func(t *testing.T) {
							// A mutation that succeeds gets a fixture of its
							// own; a refused one must leave the shared one as
							// it was.
							f := shared
							var before string
							switch {
							case op.mutates && want[i] == ok:
								n++
								f = newPermFixture(t, clients, typ, n)
							case op.mutates:
								before = permState(t, clients["owner"], f)
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
			})
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
				`{ unreadSummary { messages } }`,
				`{ message(id: "x") { id } }`,
				`mutation { markAllRead }`,
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
