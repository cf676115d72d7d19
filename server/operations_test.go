package server_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

const createChannel = `mutation($in: CreateChannelInput!) { createChannel(input: $in) {
	id uniqueName friendlyName type attributes createdBy { identity } membersCount messagesCount lastMessageIndex
	myMembership { role } unreadCount } }`

type channelData struct {
	ID               string          `json:"id"`
	UniqueName       *string         `json:"uniqueName"`
	FriendlyName     *string         `json:"friendlyName"`
	Type             string          `json:"type"`
	Attributes       json.RawMessage `json:"attributes"`
	CreatedBy        *struct{ Identity string }
	MembersCount     int  `json:"membersCount"`
	MessagesCount    int  `json:"messagesCount"`
	LastMessageIndex *int `json:"lastMessageIndex"`
	MyMembership     *struct{ Role string }
	UnreadCount      int `json:"unreadCount"`
	LastMessage      *messageData
}

type messageData struct {
	ID         string          `json:"id"`
	Index      int             `json:"index"`
	Body       string          `json:"body"`
	Attributes json.RawMessage `json:"attributes"`
	Author     *struct{ Identity string }
	EditedAt   *string `json:"editedAt"`
	DeletedAt  *string `json:"deletedAt"`
}

type pageInfo struct {
	HasNextPage     bool    `json:"hasNextPage"`
	HasPreviousPage bool    `json:"hasPreviousPage"`
	StartCursor     *string `json:"startCursor"`
	EndCursor       *string `json:"endCursor"`
}

// mustCreateChannel creates a channel as c and returns its id.
func mustCreateChannel(t *testing.T, c *parleytest.Client, in map[string]any) string {
	t.Helper()
	var out struct{ CreateChannel channelData }
	c.Do(createChannel, map[string]any{"in": in}, &out)
	return out.CreateChannel.ID
}

const sendMessage = `mutation($c: ID!, $b: String!, $a: JSON) { sendMessage(input: {channelId: $c, body: $b, attributes: $a}) {
	id index body attributes author { identity } } }`

func mustSend(t *testing.T, c *parleytest.Client, channelID, body string) messageData {
	t.Helper()
	var out struct{ SendMessage messageData }
	c.Do(sendMessage, map[string]any{"c": channelID, "b": body}, &out)
	return out.SendMessage
}

const messagesQuery = `query($c: ID!, $first: Int, $after: String, $last: Int, $before: String) {
	messages(channelId: $c, first: $first, after: $after, last: $last, before: $before) {
		edges { cursor node { id index body author { identity } deletedAt } }
		pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`

type messagesData struct {
	Messages struct {
		Edges []struct {
			Cursor string
			Node   messageData
		}
		PageInfo pageInfo
	}
}

func (m messagesData) indexes() []int {
	out := []int{}
	for _, e := range m.Messages.Edges {
		out = append(out, e.Node.Index)
	}
	return out
}

func TestTour(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")

		var me struct{ Me struct{ Identity string } }
		alice.Do(`{ me { identity } }`, nil, &me)
		if me.Me.Identity != "alice" {
			t.Fatalf("me = %+v", me)
		}

		var created struct{ CreateChannel channelData }
		alice.Do(createChannel, map[string]any{"in": map[string]any{
			"uniqueName": "general", "friendlyName": "General", "type": "PUBLIC",
			"attributes": map[string]any{"topic": "anything"}, "members": []string{"bob"},
		}}, &created)
		ch := created.CreateChannel
		if ch.Type != "PUBLIC" || *ch.UniqueName != "general" || ch.MembersCount != 2 || ch.CreatedBy.Identity != "alice" ||
			ch.MyMembership.Role != "OWNER" || ch.LastMessageIndex != nil || string(ch.Attributes) != `{"topic":"anything"}` {
			t.Fatalf("created channel = %+v", ch)
		}

		for i := range 3 {
			m := mustSend(t, bob, ch.ID, fmt.Sprintf("hello %d", i))
			if m.Index != i || m.Author.Identity != "bob" {
				t.Fatalf("message %d = %+v", i, m)
			}
		}

		var hist messagesData
		alice.Do(messagesQuery, map[string]any{"c": ch.ID, "last": 2}, &hist)
		if got := hist.indexes(); fmt.Sprint(got) != "[1 2]" || !hist.Messages.PageInfo.HasPreviousPage || hist.Messages.PageInfo.HasNextPage {
			t.Fatalf("latest page = %v %+v", got, hist.Messages.PageInfo)
		}
		var older messagesData
		alice.Do(messagesQuery, map[string]any{"c": ch.ID, "last": 2, "before": *hist.Messages.PageInfo.StartCursor}, &older)
		if got := older.indexes(); fmt.Sprint(got) != "[0]" || older.Messages.PageInfo.HasPreviousPage || !older.Messages.PageInfo.HasNextPage {
			t.Fatalf("older page = %v %+v", got, older.Messages.PageInfo)
		}

		var view struct{ Channel channelData }
		const channelQuery = `query($id: ID!) { channel(id: $id) { id membersCount messagesCount lastMessageIndex unreadCount
			lastMessage { index body } myMembership { role } } }`
		alice.Do(channelQuery, map[string]any{"id": ch.ID}, &view)
		if v := view.Channel; v.MessagesCount != 3 || *v.LastMessageIndex != 2 || v.UnreadCount != 3 || v.LastMessage.Body != "hello 2" {
			t.Fatalf("alice's view = %+v", v)
		}
		bob.Do(channelQuery, map[string]any{"id": ch.ID}, &view)
		if v := view.Channel; v.UnreadCount != 0 {
			t.Fatalf("bob's own messages are unread: %+v", v)
		}

		var read struct{ MarkRead struct{ LastReadIndex int } }
		alice.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 1) { lastReadIndex } }`, map[string]any{"c": ch.ID}, &read)
		alice.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 0) { lastReadIndex } }`, map[string]any{"c": ch.ID}, &read)
		if read.MarkRead.LastReadIndex != 1 {
			t.Fatalf("read horizon moved back to %d", read.MarkRead.LastReadIndex)
		}
		alice.Do(channelQuery, map[string]any{"id": ch.ID}, &view)
		if view.Channel.UnreadCount != 1 {
			t.Fatalf("unread after markRead(1) = %d, want 1", view.Channel.UnreadCount)
		}
	})
}

func TestMessagesEditDelete(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		m := mustSend(t, bob, ch, "first")

		var edited struct{ EditMessage messageData }
		bob.Do(`mutation($id: ID!) { editMessage(id: $id, body: "edited", attributes: {x: 1}) { id index body attributes editedAt } }`,
			map[string]any{"id": m.ID}, &edited)
		if e := edited.EditMessage; e.Body != "edited" || e.Index != 0 || e.EditedAt == nil || string(e.Attributes) != `{"x":1}` {
			t.Fatalf("edited = %+v", e)
		}
		alice.Fails("FORBIDDEN", `mutation($id: ID!) { editMessage(id: $id, body: "hijack") { id } }`, map[string]any{"id": m.ID})

		var deleted struct{ DeleteMessage messageData }
		alice.Do(`mutation($id: ID!) { deleteMessage(id: $id) { id index body deletedAt attributes } }`, map[string]any{"id": m.ID}, &deleted)
		if d := deleted.DeleteMessage; d.Body != "" || d.DeletedAt == nil || d.Index != 0 || d.Attributes != nil && string(d.Attributes) != "null" {
			t.Fatalf("deleted = %+v", d)
		}
		next := mustSend(t, bob, ch, "second")
		if next.Index != 1 {
			t.Fatalf("index after a delete = %d, want 1", next.Index)
		}
		var view struct{ Channel channelData }
		alice.Do(`query($id: ID!) { channel(id: $id) { messagesCount lastMessageIndex } }`, map[string]any{"id": ch}, &view)
		if view.Channel.MessagesCount != 1 || *view.Channel.LastMessageIndex != 1 {
			t.Fatalf("counts after delete = %+v", view.Channel)
		}
		bob.Fails("BAD_USER_INPUT", `mutation($id: ID!) { editMessage(id: $id, body: "revive") { id } }`, map[string]any{"id": m.ID})
	})
}

func TestChannelLifecycle(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob, carol := srv.Client("alice"), srv.Client("bob"), srv.Client("carol")
		ch := mustCreateChannel(t, alice, map[string]any{"uniqueName": "room", "friendlyName": "Room", "type": "PUBLIC"})

		var byName struct{ ChannelByUniqueName struct{ ID string } }
		bob.Do(`{ channelByUniqueName(uniqueName: "room") { id } }`, nil, &byName)
		if byName.ChannelByUniqueName.ID != ch {
			t.Fatalf("channelByUniqueName = %+v", byName)
		}

		var joined struct {
			JoinChannel struct {
				Role    string
				User    struct{ Identity string }
				Channel struct{ ID string }
			}
		}
		bob.Do(`mutation($c: ID!) { joinChannel(channelId: $c) { role user { identity } channel { id } } }`, map[string]any{"c": ch}, &joined)
		if j := joined.JoinChannel; j.Role != "MEMBER" || j.User.Identity != "bob" || j.Channel.ID != ch {
			t.Fatalf("joined = %+v", j)
		}
		bob.Do(`mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": ch}, nil)

		var added struct{ AddMember struct{ Role string } }
		alice.Do(`mutation($c: ID!) { addMember(channelId: $c, identity: "carol", role: ADMIN) { role } }`, map[string]any{"c": ch}, &added)
		if added.AddMember.Role != "ADMIN" {
			t.Fatalf("added = %+v", added)
		}
		alice.Fails("CONFLICT", `mutation($c: ID!) { addMember(channelId: $c, identity: "carol") { id } }`, map[string]any{"c": ch})

		var members struct {
			Members struct {
				Edges []struct {
					Cursor string
					Node   struct {
						Role string
						User struct{ Identity string }
					}
				}
				PageInfo pageInfo
			}
		}
		const membersQuery = `query($c: ID!, $after: String) { members(channelId: $c, first: 2, after: $after) {
			edges { cursor node { role user { identity } } } pageInfo { hasNextPage endCursor } } }`
		carol.Do(membersQuery, map[string]any{"c": ch}, &members)
		if len(members.Members.Edges) != 2 || !members.Members.PageInfo.HasNextPage || members.Members.Edges[0].Node.User.Identity != "alice" {
			t.Fatalf("members page 1 = %+v", members)
		}
		carol.Do(membersQuery, map[string]any{"c": ch, "after": *members.Members.PageInfo.EndCursor}, &members)
		if len(members.Members.Edges) != 1 || members.Members.PageInfo.HasNextPage || members.Members.Edges[0].Node.User.Identity != "carol" {
			t.Fatalf("members page 2 = %+v", members)
		}

		var updated struct{ UpdateChannel channelData }
		carol.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "Renamed", attributes: {a: [1, 2]}}) {
			uniqueName friendlyName attributes } }`, map[string]any{"c": ch}, &updated)
		if u := updated.UpdateChannel; *u.FriendlyName != "Renamed" || *u.UniqueName != "room" || string(u.Attributes) != `{"a":[1,2]}` {
			t.Fatalf("updated = %+v", u)
		}
		carol.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {uniqueName: null}) { uniqueName friendlyName } }`, map[string]any{"c": ch}, &updated)
		if u := updated.UpdateChannel; u.UniqueName != nil || *u.FriendlyName != "Renamed" {
			t.Fatalf("after clearing uniqueName = %+v", u)
		}

		var removed struct{ RemoveMember string }
		carol.Do(`mutation($c: ID!) { removeMember(channelId: $c, identity: "bob") }`, map[string]any{"c": ch}, &removed)
		if removed.RemoveMember == "" {
			t.Fatal("removeMember returned no id")
		}
		var left struct{ LeaveChannel string }
		alice.Do(`mutation($c: ID!) { leaveChannel(channelId: $c) }`, map[string]any{"c": ch}, &left)
		var carolView struct{ Channel channelData }
		carol.Do(`query($c: ID!) { channel(id: $c) { membersCount myMembership { role } } }`, map[string]any{"c": ch}, &carolView)
		if v := carolView.Channel; v.MembersCount != 1 || v.MyMembership.Role != "OWNER" {
			t.Fatalf("after the owner left, carol sees %+v (want OWNER of 1)", v)
		}

		mustSend(t, carol, ch, "bye")
		var deleted struct{ DeleteChannel string }
		carol.Do(`mutation($c: ID!) { deleteChannel(id: $c) }`, map[string]any{"c": ch}, &deleted)
		if deleted.DeleteChannel != ch {
			t.Fatalf("deleteChannel = %q", deleted.DeleteChannel)
		}
		carol.Fails("NOT_FOUND", `query($c: ID!) { channel(id: $c) { id } }`, map[string]any{"c": ch})
		for _, table := range []string{"members", "messages"} {
			var n int64
			if err := srv.Store.DB(t.Context()).Table(table).Where("channel_id = ?", ch).Count(&n).Error; err != nil || n != 0 {
				t.Fatalf("%s left after deleteChannel: %d (%v)", table, n, err)
			}
		}
	})
}

func TestChannelLists(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		names := []string{"charlie", "alpha", "bravo"}
		ids := map[string]string{}
		for _, n := range names {
			ids[n] = mustCreateChannel(t, alice, map[string]any{"friendlyName": n, "uniqueName": "u-" + n, "type": "PUBLIC"})
		}
		mustCreateChannel(t, alice, map[string]any{"friendlyName": "secret", "type": "PRIVATE"})
		mustSend(t, alice, ids["alpha"], "bump")

		type conn struct {
			Edges []struct {
				Node struct {
					FriendlyName string
					UnreadCount  int
				}
			}
			PageInfo pageInfo
		}
		list := func(c *parleytest.Client, query string, vars map[string]any) ([]string, pageInfo) {
			var out map[string]conn
			c.Do(query, vars, &out)
			for _, v := range out {
				var got []string
				for _, e := range v.Edges {
					got = append(got, e.Node.FriendlyName)
				}
				return got, v.PageInfo
			}
			t.Fatal("no connection in response")
			return nil, pageInfo{}
		}
		const mine = `query($first: Int, $after: String, $order: ChannelOrder) { myChannels(first: $first, after: $after, orderBy: $order) {
			edges { node { friendlyName unreadCount } } pageInfo { hasNextPage endCursor } } }`
		got, _ := list(alice, mine, nil)
		if fmt.Sprint(got) != "[alpha secret bravo charlie]" {
			t.Fatalf("myChannels by last message = %v", got)
		}
		got, info := list(alice, mine, map[string]any{"first": 2, "order": map[string]any{"field": "FRIENDLY_NAME"}})
		if fmt.Sprint(got) != "[alpha bravo]" || !info.HasNextPage {
			t.Fatalf("myChannels by name page 1 = %v %+v", got, info)
		}
		got, info = list(alice, mine, map[string]any{"first": 2, "after": *info.EndCursor, "order": map[string]any{"field": "FRIENDLY_NAME"}})
		if fmt.Sprint(got) != "[charlie secret]" || info.HasNextPage {
			t.Fatalf("myChannels by name page 2 = %v %+v", got, info)
		}
		got, _ = list(alice, mine, map[string]any{"order": map[string]any{"field": "UNIQUE_NAME", "direction": "DESC"}})
		if fmt.Sprint(got) != "[charlie bravo alpha secret]" {
			t.Fatalf("myChannels by unique name desc = %v", got)
		}
		alice.Fails("BAD_USER_INPUT", mine, map[string]any{"after": "bm90LWEtY3Vyc29y"})

		const public = `query($first: Int, $after: String) { publicChannels(first: $first, after: $after) {
			edges { node { friendlyName unreadCount } } pageInfo { hasNextPage endCursor } } }`
		got, info = list(bob, public, map[string]any{"first": 2})
		if fmt.Sprint(got) != "[charlie alpha]" || !info.HasNextPage {
			t.Fatalf("publicChannels page 1 = %v %+v", got, info)
		}
		got, info = list(bob, public, map[string]any{"first": 2, "after": *info.EndCursor})
		if fmt.Sprint(got) != "[bravo]" || info.HasNextPage {
			t.Fatalf("publicChannels page 2 = %v %+v", got, info)
		}
		var pub struct{ Channel channelData }
		bob.Do(`query($id: ID!) { channel(id: $id) { unreadCount lastMessage { id } myMembership { id } } }`, map[string]any{"id": ids["alpha"]}, &pub)
		if pub.Channel.LastMessage != nil || pub.Channel.MyMembership != nil || pub.Channel.UnreadCount != 0 {
			t.Fatalf("a non-member sees a public channel's message state: %+v", pub.Channel)
		}
	})
}

func TestPushRegistrations(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		const register = `mutation($p: PushProvider!, $t: String!) { registerPush(provider: $p, token: $t) { id provider token createdAt } }`
		var r1, r2 struct {
			RegisterPush struct{ ID, Provider, Token string }
		}
		alice.Do(register, map[string]any{"p": "FCM", "t": "tok-1"}, &r1)
		alice.Do(register, map[string]any{"p": "FCM", "t": "tok-1"}, &r2)
		if r1.RegisterPush.ID != r2.RegisterPush.ID {
			t.Fatalf("registering twice made two registrations: %+v %+v", r1, r2)
		}
		alice.Do(register, map[string]any{"p": "APNS", "t": "tok-2"}, nil)
		alice.Do(register, map[string]any{"p": "FCM", "t": "tok-3"}, nil)

		var mine struct {
			MyPushRegistrations []struct{ Provider, Token string }
		}
		alice.Do(`{ myPushRegistrations { provider token } }`, nil, &mine)
		if len(mine.MyPushRegistrations) != 3 {
			t.Fatalf("alice's registrations = %+v", mine)
		}
		bob.Do(register, map[string]any{"p": "FCM", "t": "tok-3"}, nil)
		alice.Do(`{ myPushRegistrations { provider token } }`, nil, &mine)
		if len(mine.MyPushRegistrations) != 2 {
			t.Fatalf("a token bob took over still belongs to alice: %+v", mine)
		}

		var un struct{ UnregisterPush *string }
		alice.Do(`mutation { unregisterPush(provider: APNS, token: "tok-2") }`, nil, &un)
		if un.UnregisterPush == nil {
			t.Fatal("unregisterPush returned null for an existing registration")
		}
		alice.Do(`mutation { unregisterPush(provider: APNS, token: "tok-2") }`, nil, &un)
		if un.UnregisterPush != nil {
			t.Fatal("unregisterPush returned an id for a missing registration")
		}
		var cleared struct{ ClearPushRegistrations int }
		alice.Do(`mutation { clearPushRegistrations }`, nil, &cleared)
		if cleared.ClearPushRegistrations != 1 {
			t.Fatalf("cleared %d, want 1", cleared.ClearPushRegistrations)
		}
	})
}

func TestUsers(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		var upd struct {
			UpdateMe struct {
				FriendlyName *string
				Attributes   json.RawMessage
				Online       bool
			}
		}
		alice.Do(`mutation { updateMe(input: {friendlyName: "Alice", attributes: {lang: "en"}}) { friendlyName attributes online } }`, nil, &upd)
		if *upd.UpdateMe.FriendlyName != "Alice" || string(upd.UpdateMe.Attributes) != `{"lang":"en"}` {
			t.Fatalf("updateMe = %+v", upd)
		}
		alice.Do(`mutation { updateMe(input: {attributes: null}) { friendlyName attributes } }`, nil, &upd)
		if *upd.UpdateMe.FriendlyName != "Alice" || string(upd.UpdateMe.Attributes) != "null" {
			t.Fatalf("updateMe clearing attributes = %+v", upd)
		}
		var u struct {
			User *struct{ FriendlyName string }
		}
		srv.Client("bob").Do(`{ user(identity: "alice") { friendlyName } }`, nil, &u)
		if u.User == nil || u.User.FriendlyName != "Alice" {
			t.Fatalf("user(alice) = %+v", u)
		}
		srv.Client("bob").Do(`{ user(identity: "nobody") { friendlyName } }`, nil, &u)
		if u.User != nil {
			t.Fatalf("user(nobody) = %+v", u)
		}
	})
}

// decode unmarshals a response's data.
func decode(t *testing.T, r *parleytest.Response, out any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, out); err != nil {
		t.Errorf("decode %s: %v", r.Data, err)
	}
}
