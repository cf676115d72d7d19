package e2e_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/delivery/deliverytest"
	"github.com/parleychat/parley/delivery/setup"
	"github.com/parleychat/parley/parleytest"
)

const importQ = `mutation($c: ID!, $m: [ImportMessageInput!]!) { importMessages(channelId: $c, messages: $m) }`

// history makes n messages for importMessages, a minute apart.
func history(n int, from time.Time) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{
			"author": fmt.Sprintf("old-%d", i%3), "body": fmt.Sprintf("old message %d", i),
			"createdAt": from.Add(time.Duration(i) * time.Minute).Format(time.RFC3339Nano),
		}
	}
	return out
}

// TestImportMessages: an admin imports history after a channel's last
// message, in order, at most 1000 at a time; it is unread for nobody and
// pushes and posts nothing.
func TestImportMessages(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		secret := deliverytest.NewSecret(t)
		r := deliverytest.NewWebhooks(t, ca, secret)
		cfg := f.config()
		cfg.WebhookURL, cfg.WebhookSecret = r.URL, secret
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: cfg})
		ch := createChannel(t, s, "alice", "General", "bob")
		register(t, s, "bob", "FCM", "fcm-bob")
		admin := s.AdminClient("backend")
		from := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

		msg := s.Client("alice").Fails("FORBIDDEN", importQ, map[string]any{"c": ch, "m": history(1, from)})
		if msg == "" {
			t.Error("no message")
		}
		admin.Fails("BAD_USER_INPUT", importQ, map[string]any{"c": ch, "m": history(1001, from)})
		backwards := history(2, from)
		backwards[1]["createdAt"] = from.Add(-time.Minute).Format(time.RFC3339Nano)
		admin.Fails("BAD_USER_INPUT", importQ, map[string]any{"c": ch, "m": backwards})
		admin.Fails("NOT_FOUND", importQ, map[string]any{"c": "nope", "m": history(1, from)})
		waitIdle(t, s)
		before := len(r.Events())

		var out struct{ ImportMessages int }
		admin.Do(importQ, map[string]any{"c": ch, "m": history(1000, from)}, &out)
		if out.ImportMessages != 1000 {
			t.Errorf("imported %d", out.ImportMessages)
		}
		var got struct {
			Channel struct {
				UnreadCount      int
				LastMessageIndex int
				MessagesCount    int
			}
			Messages struct {
				Edges []struct {
					Node struct {
						Index     int
						Body      string
						CreatedAt time.Time
						Author    struct{ Identity string }
					}
				}
			}
		}
		s.Client("bob").Do(`query($c: ID!) { channel(id: $c) { unreadCount lastMessageIndex messagesCount }
			messages(channelId: $c, first: 2) { edges { node { index body createdAt author { identity } } } } }`, map[string]any{"c": ch}, &got)
		if got.Channel.UnreadCount != 0 || got.Channel.LastMessageIndex != 999 || got.Channel.MessagesCount != 1000 {
			t.Errorf("channel after import %+v", got.Channel)
		}
		if e := got.Messages.Edges; len(e) != 2 || e[1].Node.Index != 1 || e[1].Node.Body != "old message 1" || e[1].Node.Author.Identity != "old-1" || !e[1].Node.CreatedAt.Equal(from.Add(time.Minute)) {
			t.Errorf("imported messages %+v", got.Messages.Edges)
		}
		// A live message after the import takes the next index, and is
		// unread.
		send(t, s, "alice", ch, "live")
		waitIdle(t, s)
		s.Client("bob").Do(`query($c: ID!) { channel(id: $c) { unreadCount lastMessageIndex messagesCount } }`, map[string]any{"c": ch}, &got)
		if got.Channel.UnreadCount != 1 || got.Channel.LastMessageIndex != 1000 {
			t.Errorf("channel after a live message %+v", got.Channel)
		}
		if n := len(f.fcm.Messages()); n != 1 {
			t.Errorf("%d pushes; want only the live message's", n)
		}
		if n := len(r.Events()) - before; n != 1 {
			t.Errorf("%d webhooks; want only the live message's", n)
		}
	})
}

// TestUpsertAndDeleteUsers: the admin API manages users; other tokens and
// servers with PARLEY_ADMIN=false get FORBIDDEN.
func TestUpsertAndDeleteUsers(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: &setup.Config{}})
		admin := s.AdminClient("backend")
		upsert := `mutation($u: [UpsertUserInput!]!) { upsertUsers(users: $u) { identity friendlyName photoUrl attributes } }`
		var out struct {
			UpsertUsers []struct {
				Identity     string
				FriendlyName *string
				PhotoURL     *string `json:"photoUrl"`
				Attributes   map[string]any
			}
		}
		admin.Do(upsert, map[string]any{"u": []map[string]any{
			{"identity": "zoe", "friendlyName": "Zoe", "attributes": map[string]any{"team": "red"}},
			{"identity": "yan", "photoUrl": "https://example.com/y.png"},
		}}, &out)
		if len(out.UpsertUsers) != 2 || *out.UpsertUsers[0].FriendlyName != "Zoe" || out.UpsertUsers[1].PhotoURL == nil {
			t.Fatalf("upsert %+v", out)
		}
		// Fields left out stay; null clears.
		admin.Do(upsert, map[string]any{"u": []map[string]any{{"identity": "zoe", "friendlyName": nil}}}, &out)
		if u := out.UpsertUsers[0]; u.FriendlyName != nil || u.Attributes["team"] != "red" {
			t.Errorf("second upsert %+v", u)
		}
		admin.Fails("BAD_USER_INPUT", upsert, map[string]any{"u": []map[string]any{{"identity": "a"}, {"identity": "a"}}})
		many := make([]map[string]any, 1001)
		for i := range many {
			many[i] = map[string]any{"identity": fmt.Sprintf("u%d", i)}
		}
		admin.Fails("BAD_USER_INPUT", upsert, map[string]any{"u": many})
		var atLimit struct{ UpsertUsers []struct{ Identity string } }
		admin.Do(`mutation($u: [UpsertUserInput!]!) { upsertUsers(users: $u) { identity } }`, map[string]any{"u": many[:1000]}, &atLimit)
		if len(atLimit.UpsertUsers) != 1000 || atLimit.UpsertUsers[999].Identity != "u999" {
			t.Errorf("upserting 1000 users returned %d", len(atLimit.UpsertUsers))
		}
		s.Client("zoe").Fails("FORBIDDEN", upsert, map[string]any{"u": []map[string]any{{"identity": "zoe"}}})

		// zoe owns a channel with yan, writes, registers a device; deleting
		// her hands the channel to yan and leaves her messages as
		// tombstones without an author.
		ch := createChannel(t, s, "zoe", "Zoe's", "yan")
		id := send(t, s, "zoe", ch, "secret")
		register(t, s, "zoe", "FCM", "fcm-zoe")
		del := `mutation($i: String!) { deleteUser(identity: $i) }`
		s.Client("yan").Fails("FORBIDDEN", del, map[string]any{"i": "zoe"})
		var gone struct{ DeleteUser *string }
		admin.Do(del, map[string]any{"i": "zoe"}, &gone)
		if gone.DeleteUser == nil {
			t.Fatal("deleteUser returned null")
		}
		zoeID := *gone.DeleteUser
		admin.Do(del, map[string]any{"i": "zoe"}, &gone)
		if gone.DeleteUser != nil {
			t.Errorf("deleting twice returned %v", *gone.DeleteUser)
		}
		var after struct {
			User    *struct{ Identity string }
			Channel struct {
				MembersCount  int
				MessagesCount int
				MyMembership  struct{ Role string }
			}
			Messages struct {
				Edges []struct {
					Node struct {
						ID        string
						Body      string
						DeletedAt *time.Time
						Author    *struct{ Identity string }
					}
				}
			}
		}
		s.Client("yan").Do(`query($c: ID!) { user(identity: "zoe") { identity }
			channel(id: $c) { membersCount messagesCount myMembership { role } }
			messages(channelId: $c) { edges { node { id body deletedAt author { identity } } } } }`, map[string]any{"c": ch}, &after)
		if after.User != nil || after.Channel.MembersCount != 1 || after.Channel.MessagesCount != 0 || after.Channel.MyMembership.Role != "OWNER" {
			t.Errorf("after deleteUser: %+v", after)
		}
		if e := after.Messages.Edges; len(e) != 1 || e[0].Node.ID != id || e[0].Node.Body != "" || e[0].Node.DeletedAt == nil || e[0].Node.Author != nil {
			t.Errorf("zoe's message after deleteUser: %+v", after.Messages.Edges)
		}
		var regs int64
		if err := s.Store.DB(t.Context()).Table("push_registrations").Count(&regs).Error; err != nil || regs != 0 {
			t.Errorf("%d push registrations left (%v)", regs, err)
		}
		// Her token still works: it makes a new, empty user.
		var me struct{ Me struct{ ID string } }
		s.Client("zoe").Do(`{ me { id } }`, nil, &me)
		if me.Me.ID == zoeID || me.Me.ID == "" {
			t.Errorf("zoe came back as %q", me.Me.ID)
		}

		noAdmin := parleytest.NewServer(t, b, parleytest.Options{NoAdmin: true})
		noAdmin.AdminClient("backend").Fails("FORBIDDEN", del, map[string]any{"i": "zoe"})
	})
}

// TestAdminActsAsOwner: an admin token acts on any channel as its OWNER
// would, without being a member.
func TestAdminActsAsOwner(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := parleytest.NewServer(t, b, parleytest.Options{})
		ch := createChannel(t, s, "alice", "Private", "bob")
		send(t, s, "alice", ch, "hi")
		admin := s.AdminClient("backend")
		var got struct {
			Channel  struct{ FriendlyName string }
			Messages struct {
				Edges []struct{ Node struct{ Body string } }
			}
		}
		admin.Do(`query($c: ID!) { channel(id: $c) { friendlyName } messages(channelId: $c) { edges { node { body } } } }`, map[string]any{"c": ch}, &got)
		if got.Channel.FriendlyName != "Private" || len(got.Messages.Edges) != 1 {
			t.Errorf("admin reads %+v", got)
		}
		admin.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "Renamed"}) { id } }`, map[string]any{"c": ch}, nil)
		admin.Do(`mutation($c: ID!) { addMember(channelId: $c, identity: "carol") { id } }`, map[string]any{"c": ch}, nil)
		admin.Do(`mutation($c: ID!) { removeMember(channelId: $c, identity: "bob") }`, map[string]any{"c": ch}, nil)
		admin.Fails("FORBIDDEN", `mutation($c: ID!) { removeMember(channelId: $c, identity: "alice") }`, map[string]any{"c": ch})
		admin.Fails("FORBIDDEN", `mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, map[string]any{"c": ch})
		// Its sends move no read horizon of its own: one with a mention
		// writes the message and the mention, one without the message.
		admin.Do(`mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "backend 1", mentions: ["carol"]}) { id } }`, map[string]any{"c": ch}, nil)
		admin.Do(`mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "backend 2"}) { id } }`, map[string]any{"c": ch}, nil)
		var carol struct {
			Channel  struct{ UnreadMentionsCount int }
			Messages struct {
				Edges []struct {
					Node struct {
						Body     string
						Mentions []struct{ Identity string }
					}
				}
			}
		}
		s.Client("carol").Do(`query($c: ID!) { channel(id: $c) { unreadMentionsCount } messages(channelId: $c, last: 2) { edges { node { body mentions { identity } } } } }`,
			map[string]any{"c": ch}, &carol)
		if e := carol.Messages.Edges; carol.Channel.UnreadMentionsCount != 1 || len(e) != 2 || e[0].Node.Body != "backend 1" || len(e[0].Node.Mentions) != 1 ||
			e[0].Node.Mentions[0].Identity != "carol" || e[1].Node.Body != "backend 2" || len(e[1].Node.Mentions) != 0 {
			t.Errorf("carol sees the admin's messages as %+v", carol)
		}
		// Without the claim, the same identity is an outsider.
		s.Client("backend").Fails("NOT_FOUND", `query($c: ID!) { channel(id: $c) { id } }`, map[string]any{"c": ch})
		var members struct {
			Members struct {
				Edges []struct {
					Node struct{ User struct{ Identity string } }
				}
			}
		}
		s.Client("alice").Do(`query($c: ID!) { members(channelId: $c) { edges { node { user { identity } } } } }`, map[string]any{"c": ch}, &members)
		var ids []string
		for _, e := range members.Members.Edges {
			ids = append(ids, e.Node.User.Identity)
		}
		if fmt.Sprint(ids) != "[alice carol]" {
			t.Errorf("members %v", ids)
		}
	})
}

// TestNotificationLevel: a member sees and sets their own level; others
// see null.
func TestNotificationLevel(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := parleytest.NewServer(t, b, parleytest.Options{})
		ch := createChannel(t, s, "alice", "General", "bob")
		set := `mutation($c: ID!, $l: NotificationLevel!) { setNotificationLevel(channelId: $c, level: $l) { notificationLevel } }`
		var out struct {
			SetNotificationLevel struct{ NotificationLevel string }
		}
		s.Client("bob").Do(set, map[string]any{"c": ch, "l": "MUTED"}, &out)
		if out.SetNotificationLevel.NotificationLevel != "MUTED" {
			t.Errorf("set %+v", out)
		}
		var list struct {
			Members struct {
				Edges []struct {
					Node struct {
						NotificationLevel *string
						User              struct{ Identity string }
					}
				}
			}
		}
		q := `query($c: ID!) { members(channelId: $c) { edges { node { notificationLevel user { identity } } } } }`
		for _, who := range []string{"alice", "bob"} {
			s.Client(who).Do(q, map[string]any{"c": ch}, &list)
			for _, e := range list.Members.Edges {
				n := e.Node
				switch {
				case n.User.Identity != who && n.NotificationLevel != nil:
					t.Errorf("%s sees %s's level %s", who, n.User.Identity, *n.NotificationLevel)
				case n.User.Identity == "bob" && who == "bob" && (n.NotificationLevel == nil || *n.NotificationLevel != "MUTED"):
					t.Errorf("bob sees his level as %v", n.NotificationLevel)
				case n.User.Identity == "alice" && who == "alice" && (n.NotificationLevel == nil || *n.NotificationLevel != "DEFAULT"):
					t.Errorf("alice sees her level as %v", n.NotificationLevel)
				}
			}
		}
		s.Client("carol").Fails("NOT_FOUND", set, map[string]any{"c": ch, "l": "MUTED"})
		s.Client("bob").Fails("GRAPHQL_VALIDATION_FAILED", set, map[string]any{"c": ch, "l": "LOUD"})
	})
}

// TestNotifiable: User.notifiable follows the registrations, and its flips
// are announced with userUpdated(NOTIFIABLE).
func TestNotifiable(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := parleytest.NewServer(t, b, parleytest.Options{})
		s.Client("bob").Do(`{ me { id } }`, nil, nil)
		ws := s.Dial(t, "alice")
		defer ws.Close()
		sub := ws.Subscribe(`subscription { userUpdated(identity: "bob") { user { notifiable } reasons } }`, nil)
		ws.Ready(t)
		notifiable := func() bool {
			var out struct{ User struct{ Notifiable bool } }
			s.Client("alice").Do(`{ user(identity: "bob") { notifiable } }`, nil, &out)
			return out.User.Notifiable
		}
		if notifiable() {
			t.Error("bob is notifiable without registrations")
		}
		register(t, s, "bob", "FCM", "t1")
		register(t, s, "bob", "APNS", "t2")
		if !notifiable() {
			t.Error("bob is not notifiable with registrations")
		}
		s.Client("bob").Do(`mutation { clearPushRegistrations }`, nil, nil)
		if notifiable() {
			t.Error("bob is notifiable after clearing")
		}
		for _, want := range []bool{true, false} {
			var data struct {
				UserUpdated struct {
					User    struct{ Notifiable bool }
					Reasons []string
				}
			}
			if err := json.Unmarshal(sub.Next(t, 10*time.Second), &data); err != nil {
				t.Fatal(err)
			}
			if data.UserUpdated.User.Notifiable != want || fmt.Sprint(data.UserUpdated.Reasons) != "[NOTIFIABLE]" {
				t.Errorf("event %+v; want notifiable %v", data, want)
			}
		}
	})
}
