package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/hub/hubtest"
	"github.com/parleychat/parley/parleytest"
)

// These tests cover the live updates of a channel list and of a session:
// channelEvents' LAST_MESSAGE, LAST_READ and STATUS updates (coalesced per
// channel and second, on a clock the test moves), sessionEvents with
// refreshSession over an open WebSocket, and the list forms of messageAdded
// and userUpdated.

const channelUpdatesSub = `subscription { channelEvents { type reasons channel { id lastMessageIndex unreadCount } } }`

type channelUpdate struct {
	ChannelEvents struct {
		Type    string
		Reasons []string
		Channel struct {
			ID               string
			LastMessageIndex *int
			UnreadCount      int
		}
	}
}

func (u channelUpdate) String() string {
	e := u.ChannelEvents
	last := -1
	if e.Channel.LastMessageIndex != nil {
		last = *e.Channel.LastMessageIndex
	}
	return fmt.Sprintf("%s %s last=%d unread=%d", e.Type, strings.Join(e.Reasons, ","), last, e.Channel.UnreadCount)
}

// nextUpdate decodes the next channelEvents event of sub.
func nextUpdate(t *testing.T, sub *parleytest.WSSub) channelUpdate {
	t.Helper()
	var u channelUpdate
	mustJSON(t, sub.Next(t, eventWait), &u)
	return u
}

// wantUpdate checks the next channelEvents event of sub, as channelUpdate's
// String shows it.
func wantUpdate(t *testing.T, sub *parleytest.WSSub, want string) {
	t.Helper()
	if got := nextUpdate(t, sub).String(); got != want {
		t.Fatalf("channelEvents: got %q, want %q", got, want)
	}
}

const markRead = `mutation($c: ID!, $i: Int!) { markRead(channelId: $c, index: $i) { lastReadIndex } }`

// TestChannelEventsLastMessageAndLastRead: a message in one of the caller's
// channels, and the caller reading, update the channel list live; within a
// second of an update the next ones wait, and go out as one event with the
// channel as it is then and every reason.
func TestChannelEventsLastMessageAndLastRead(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		clock := hubtest.New(time.Now())
		srv := parleytest.NewServer(t, b, parleytest.Options{Clock: clock})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		other := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		vars := map[string]any{"c": ch}
		conn := srv.Dial(t, "bob")
		updates := conn.Subscribe(channelUpdatesSub, nil)
		// Readiness: these arrive in the same dispatch as the updates they
		// cause, so once one arrives the update was decided.
		added := conn.Subscribe(`subscription($c: ID!) { messageAdded(channelId: $c) { index } }`, vars)
		reads := conn.Subscribe(`subscription($c: ID!) { memberUpdated(channelId: $c) { reasons } }`, vars)
		ready(t, conn)

		mustSend(t, alice, ch, "m0")
		wantUpdate(t, updates, "UPDATED LAST_MESSAGE last=0 unread=1")
		added.Next(t, eventWait)

		mustSend(t, alice, ch, "m1")
		mustSend(t, alice, ch, "m2")
		added.Next(t, eventWait)
		added.Next(t, eventWait)
		updates.NoEvent(t, quiet)
		clock.Advance(time.Second)
		wantUpdate(t, updates, "UPDATED LAST_MESSAGE last=2 unread=3")

		bob.Do(markRead, map[string]any{"c": ch, "i": 2}, nil)
		reads.Next(t, eventWait)
		updates.NoEvent(t, quiet)
		clock.Advance(time.Second)
		wantUpdate(t, updates, "UPDATED LAST_READ last=2 unread=0")

		// A window with nothing in it ends the cooling: the next update
		// goes out at once.
		clock.Advance(time.Second)
		mustSend(t, alice, ch, "m3")
		wantUpdate(t, updates, "UPDATED LAST_MESSAGE last=3 unread=1")
		added.Next(t, eventWait)

		mustSend(t, alice, ch, "m4")
		added.Next(t, eventWait)
		bob.Do(markRead, map[string]any{"c": ch, "i": 4}, nil)
		reads.Next(t, eventWait)
		updates.NoEvent(t, quiet)
		clock.Advance(time.Second)
		wantUpdate(t, updates, "UPDATED LAST_MESSAGE,LAST_READ last=4 unread=0")

		// Each channel has its own window, and other channel events are
		// not held back.
		mustSend(t, alice, ch, "m5")
		added.Next(t, eventWait)
		mustSend(t, alice, other, "elsewhere")
		if got := nextUpdate(t, updates); got.String() != "UPDATED LAST_MESSAGE last=0 unread=1" || got.ChannelEvents.Channel.ID != other {
			t.Fatalf("channelEvents after a message in a second channel: %v", got)
		}
		alice.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "Renamed"}) { id } }`, vars, nil)
		wantUpdate(t, updates, "UPDATED FRIENDLY_NAME last=5 unread=1")
		clock.Advance(time.Second)
		wantUpdate(t, updates, "UPDATED LAST_MESSAGE last=5 unread=1")
	})
}

// TestChannelEventsStatus: accepting an invitation tells the caller's
// channel list UPDATED with STATUS, besides JOINED.
func TestChannelEventsStatus(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner := srv.Client("owner")
		srv.Client("bob").Do(`{ me { id } }`, nil, nil)
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE"})
		conn := srv.Dial(t, "bob")
		events := conn.Subscribe(`subscription { channelEvents { type reasons channel { id status } } }`, nil)
		ready(t, conn)
		owner.Do(inviteMember, map[string]any{"c": ch, "i": "bob"}, nil)
		var ev channelEventData
		mustJSON(t, events.Next(t, eventWait), &ev)
		if ev.ChannelEvents.Type != "INVITED" {
			t.Fatalf("after the invitation: %+v", ev)
		}
		srv.Client("bob").Do(acceptInvite, map[string]any{"c": ch}, nil)
		var got []string
		for range 2 {
			var e struct {
				ChannelEvents struct {
					Type    string
					Reasons []string
					Channel struct{ ID, Status string }
				}
			}
			mustJSON(t, events.Next(t, eventWait), &e)
			if e.ChannelEvents.Channel.ID != ch {
				t.Fatalf("event of another channel: %+v", e)
			}
			got = append(got, fmt.Sprintf("%s[%s]%s", e.ChannelEvents.Type, strings.Join(e.ChannelEvents.Reasons, ","), e.ChannelEvents.Channel.Status))
		}
		slices.Sort(got)
		if want := []string{"JOINED[]JOINED", "UPDATED[STATUS]JOINED"}; !slices.Equal(got, want) {
			t.Fatalf("after accepting: %q, want %q", got, want)
		}
	})
}

const sessionEventsSub = `subscription { sessionEvents { type expiresAt } }`

type sessionEventData struct {
	SessionEvents struct {
		Type      string
		ExpiresAt time.Time
	}
}

// nextSessionEvent checks the next sessionEvents event of sub.
func nextSessionEvent(t *testing.T, sub *parleytest.WSSub, typ string, expires time.Time) {
	t.Helper()
	var ev sessionEventData
	mustJSON(t, sub.Next(t, eventWait), &ev)
	if ev.SessionEvents.Type != typ || !ev.SessionEvents.ExpiresAt.Equal(expires) {
		t.Fatalf("sessionEvents: got %+v, want %s expiring at %v", ev.SessionEvents, typ, expires)
	}
}

// expiryOf is when token expires.
func expiryOf(t *testing.T, srv *parleytest.Server, token string) time.Time {
	t.Helper()
	var data struct{ Session struct{ ExpiresAt time.Time } }
	srv.ClientWithToken(token).Do(`{ session { expiresAt } }`, nil, &data)
	return data.Session.ExpiresAt
}

// TestRefreshSessionOverWebSocket: sessionEvents says EXPIRING a minute
// before the token expires; refreshSession sent over the same WebSocket
// replaces the connection's token, says REFRESHED, and the connection's
// subscriptions go on past the old expiry until the new one closes it with
// 4403. A token of another identity is FORBIDDEN and changes nothing. Over
// both subprotocols, on a clock the test moves.
func TestRefreshSessionOverWebSocket(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "graphql-transport-ws", true: "graphql-ws"}[legacy], func(t *testing.T) {
			parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
				clock := hubtest.New(time.Now())
				srv := parleytest.NewServer(t, b, parleytest.Options{Clock: clock})
				srv.Client("alice").Do(`{ me { id } }`, nil, nil)
				first := srv.TokenWith("bob", nil, time.Hour)
				oldExp := expiryOf(t, srv, first)
				opts := []parleytest.DialOption{parleytest.WithInitPayload(map[string]any{"authorization": "Bearer " + first})}
				if legacy {
					opts = append(opts, parleytest.WithLegacyProtocol())
				}
				conn := srv.Dial(t, "", opts...)
				session := conn.Subscribe(sessionEventsSub, nil)
				renames := conn.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
				ready(t, conn)
				advanceTo := func(at time.Time) { clock.Advance(at.Sub(clock.Now())) }

				advanceTo(oldExp.Add(-time.Minute - time.Second))
				session.NoEvent(t, quiet)
				advanceTo(oldExp.Add(-time.Minute))
				nextSessionEvent(t, session, "EXPIRING", oldExp)

				const refresh = `mutation($t: String!) { refreshSession(token: $t) { identity expiresAt } }`
				other := srv.TokenWith("mallory", nil, 3*time.Hour)
				if errs := conn.Subscribe(refresh, map[string]any{"t": other}).Err(t, eventWait); errs[0].Code() != "FORBIDDEN" {
					t.Fatalf("refreshSession with another identity's token: %+v", errs)
				}
				fresh := srv.TokenWith("bob", nil, 3*time.Hour)
				newExp := expiryOf(t, srv, fresh)
				var refreshed struct{ RefreshSession struct{ ExpiresAt time.Time } }
				mustJSON(t, conn.Subscribe(refresh, map[string]any{"t": fresh}).Next(t, eventWait), &refreshed)
				if !refreshed.RefreshSession.ExpiresAt.Equal(newExp) {
					t.Fatalf("refreshSession = %+v, want expiry %v", refreshed, newExp)
				}
				nextSessionEvent(t, session, "REFRESHED", newExp)

				// Past the old token's expiry and leeway, the connection
				// and its subscriptions go on.
				advanceTo(oldExp.Add(auth.DefaultLeeway + time.Minute))
				rtRename(t, srv.Client("alice"), "Alice")
				rtWantRenamed(t, renames.Next(t, eventWait), "alice", "Alice")
				var who struct{ Session struct{ ExpiresAt time.Time } }
				mustJSON(t, conn.Subscribe(`{ session { expiresAt } }`, nil).Next(t, eventWait), &who)
				if !who.Session.ExpiresAt.Equal(newExp) {
					t.Fatalf("session over the refreshed connection expires at %v, want %v", who.Session.ExpiresAt, newExp)
				}

				advanceTo(newExp.Add(-time.Minute))
				nextSessionEvent(t, session, "EXPIRING", newExp)
				advanceTo(newExp.Add(auth.DefaultLeeway - time.Second))
				renames.NoEvent(t, quiet)
				advanceTo(newExp.Add(auth.DefaultLeeway))
				if code := conn.CloseCode(t, eventWait); code != 4403 {
					t.Fatalf("close code at the new expiry = %d, want 4403", code)
				}
			})
		})
	}
}

// TestSessionEventsExpiringSoon: a token that expires within the warning
// gets EXPIRING at once, over server-sent events too; over HTTP,
// refreshSession only checks the token.
func TestSessionEventsExpiringSoon(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{ExpiryWarning: 2 * time.Hour})
		token := srv.Token("bob")
		exp := expiryOf(t, srv, token)
		sub := srv.Dial(t, "", parleytest.WithInitPayload(map[string]any{"authorization": "Bearer " + token})).Subscribe(sessionEventsSub, nil)
		nextSessionEvent(t, sub, "EXPIRING", exp)

		stream := srv.SSE(t, "bob", sessionEventsSub, nil)
		var ev sessionEventData
		mustJSON(t, stream.Next(t, eventWait), &ev)
		if ev.SessionEvents.Type != "EXPIRING" {
			t.Fatalf("sessionEvents over SSE: %+v", ev)
		}
	})
}

const messagesInSub = `subscription($cs: [ID!], $c: ID, $after: Int) { messageAdded(channelIds: $cs, channelId: $c, afterIndex: $after) { index body channel { id } } }`

// TestMessageAddedChannelIds: one subscription follows a list of the
// caller's channels: each checked as channelId is (grants too), 1 to 100
// ids, not with channelId or afterIndex; leaving one drops it, and leaving
// the last ends the subscription.
func TestMessageAddedChannelIds(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		ch1 := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		ch2 := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		private := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})
		public := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC"})
		conn := srv.Dial(t, "bob")

		refused := func(code string, vars map[string]any) {
			t.Helper()
			errs := conn.Subscribe(messagesInSub, vars).Err(t, eventWait)
			if errs[0].Code() != code {
				t.Fatalf("messageAdded(%v): %+v, want %s", vars, errs, code)
			}
		}
		repeat := func(n int) []string {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = []string{ch1, ch2}[i%2]
			}
			return ids
		}
		refused("BAD_USER_INPUT", map[string]any{"cs": repeat(101)})
		refused("BAD_USER_INPUT", map[string]any{"cs": []string{}})
		refused("BAD_USER_INPUT", map[string]any{"cs": []string{ch1}, "c": ch1})
		refused("BAD_USER_INPUT", map[string]any{"cs": []string{ch1}, "after": 0})
		refused("NOT_FOUND", map[string]any{"cs": []string{ch1, private}})
		refused("NOT_FOUND", map[string]any{"cs": []string{ch1, "no-such-channel"}})
		refused("FORBIDDEN", map[string]any{"cs": []string{public, ch1}})

		sub := conn.Subscribe(messagesInSub, map[string]any{"cs": repeat(100)})
		ready(t, conn)
		mustSend(t, alice, ch1, "one")
		mustSend(t, alice, ch2, "two")
		mustSend(t, alice, public, "not followed")
		mustSend(t, alice, ch1, "three")
		var got []string
		for range 3 {
			var ev addedEvent
			mustJSON(t, sub.Next(t, eventWait), &ev)
			got = append(got, ev.MessageAdded.Body)
		}
		if want := "one two three"; strings.Join(got, " ") != want {
			t.Fatalf("messageAdded(channelIds) got %q, want %q", got, want)
		}

		leave := `mutation($c: ID!) { leaveChannel(channelId: $c) }`
		bob := srv.Client("bob")
		bob.Do(leave, map[string]any{"c": ch1}, nil)
		mustSend(t, alice, ch1, "after leaving")
		mustSend(t, alice, ch2, "still followed")
		var ev addedEvent
		mustJSON(t, sub.Next(t, eventWait), &ev)
		if ev.MessageAdded.Body != "still followed" {
			t.Fatalf("after leaving one channel: %+v", ev)
		}
		bob.Do(leave, map[string]any{"c": ch2}, nil)
		if errs := sub.Err(t, eventWait); errs[0].Code() != "FORBIDDEN" {
			t.Fatalf("after leaving the last channel: %+v", errs)
		}

		// A token granted one channel follows that one only.
		granted := srv.TokenWith("carol", map[string]auth.Access{ch1: auth.Read}, time.Hour)
		alice.Do(`mutation($c: ID!) { addMembers(channelId: $c, members: [{identity: "carol"}]) { id } }`, map[string]any{"c": ch2}, nil)
		alice.Do(`mutation($c: ID!) { addMembers(channelId: $c, members: [{identity: "carol"}]) { id } }`, map[string]any{"c": ch1}, nil)
		carol := srv.Dial(t, "", parleytest.WithInitPayload(map[string]any{"authorization": "Bearer " + granted}))
		if errs := carol.Subscribe(messagesInSub, map[string]any{"cs": []string{ch1, ch2}}).Err(t, eventWait); errs[0].Code() != "NOT_FOUND" {
			t.Fatalf("channelIds outside the token's grants: %+v", errs)
		}
		carolSub := carol.Subscribe(messagesInSub, map[string]any{"cs": []string{ch1}})
		ready(t, carol)
		mustSend(t, alice, ch1, "granted")
		mustJSON(t, carolSub.Next(t, eventWait), &ev)
		if ev.MessageAdded.Body != "granted" {
			t.Fatalf("granted channel: %+v", ev)
		}
	})
}

const usersUpdatedSub = `subscription($id: String, $ids: [String!]) { userUpdated(identity: $id, identities: $ids) { user { identity friendlyName } reasons } }`

// TestUserUpdatedIdentities: one subscription follows a list of users: 1
// to 100 identities, exactly one of identity and identities, NOT_FOUND for
// an unknown one.
func TestUserUpdatedIdentities(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, carol := srv.Client("alice"), srv.Client("carol")
		for _, c := range []*parleytest.Client{alice, carol, srv.Client("dave")} {
			c.Do(`{ me { id } }`, nil, nil)
		}
		conn := srv.Dial(t, "bob")
		repeat := func(n int) []string {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = []string{"alice", "carol"}[i%2]
			}
			return ids
		}
		for _, c := range []struct {
			code string
			vars map[string]any
		}{
			{"BAD_USER_INPUT", map[string]any{}},
			{"BAD_USER_INPUT", map[string]any{"id": "alice", "ids": []string{"carol"}}},
			{"BAD_USER_INPUT", map[string]any{"ids": []string{}}},
			{"BAD_USER_INPUT", map[string]any{"ids": repeat(101)}},
			{"NOT_FOUND", map[string]any{"ids": []string{"alice", "nobody"}}},
		} {
			if errs := conn.Subscribe(usersUpdatedSub, c.vars).Err(t, eventWait); errs[0].Code() != c.code {
				t.Fatalf("userUpdated(%v): %+v, want %s", c.vars, errs, c.code)
			}
		}
		sub := conn.Subscribe(usersUpdatedSub, map[string]any{"ids": repeat(100)})
		one := conn.Subscribe(usersUpdatedSub, map[string]any{"id": "carol"})
		ready(t, conn)
		rtRename(t, alice, "Alice")
		rtRename(t, srv.Client("dave"), "Dave")
		rtRename(t, carol, "Carol")
		rtWantRenamed(t, sub.Next(t, eventWait), "alice", "Alice")
		rtWantRenamed(t, sub.Next(t, eventWait), "carol", "Carol")
		rtWantRenamed(t, one.Next(t, eventWait), "carol", "Carol")
	})
}

// nextChannelEventExcept returns the next channelEvents event of sub,
// passing over UPDATED ones whose reasons are all among skip (the
// LAST_MESSAGE updates that come with messages a test sends for other
// reasons, say).
func nextChannelEventExcept(t *testing.T, sub *parleytest.WSSub, skip ...string) json.RawMessage {
	t.Helper()
	for {
		data := sub.Next(t, eventWait)
		var ev struct {
			ChannelEvents struct {
				Type    string
				Reasons []string
			}
		}
		mustJSON(t, data, &ev)
		e := ev.ChannelEvents
		if e.Type != "UPDATED" || len(e.Reasons) == 0 || slices.ContainsFunc(e.Reasons, func(r string) bool { return !slices.Contains(skip, r) }) {
			return data
		}
	}
}

// TestTwoNodesRealtimeUpdates: channelEvents' LAST_MESSAGE and LAST_READ,
// messageAdded(channelIds), userUpdated(identities) and sessionEvents'
// EXPIRING for a subscriber on node A, caused on node B.
func TestTwoNodesRealtimeUpdates(t *testing.T) {
	t.Parallel()
	nodes := parleytest.MultiNode(t)
	clock := hubtest.New(time.Now())
	a := parleytest.NewServer(t, nodes, parleytest.Options{Clock: clock})
	b := parleytest.NewServer(t, nodes, parleytest.Options{DatabaseURL: a.DatabaseURL, Clock: clock})
	aliceOnB, bobOnB := b.Client("alice"), b.Client("bob")
	ch1 := mustCreateChannel(t, aliceOnB, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
	ch2 := mustCreateChannel(t, aliceOnB, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
	b.Client("carol").Do(`{ me { id } }`, nil, nil)

	conn := a.Dial(t, "bob")
	updates := conn.Subscribe(channelUpdatesSub, nil)
	added := conn.Subscribe(messagesInSub, map[string]any{"cs": []string{ch1, ch2}})
	users := conn.Subscribe(usersUpdatedSub, map[string]any{"ids": []string{"alice", "carol"}})
	reads := conn.Subscribe(`subscription($c: ID!) { memberUpdated(channelId: $c) { reasons } }`, map[string]any{"c": ch1})
	session := conn.Subscribe(sessionEventsSub, nil)
	ready(t, conn)

	mustSend(t, aliceOnB, ch1, "m0")
	wantUpdate(t, updates, "UPDATED LAST_MESSAGE last=0 unread=1")
	mustSend(t, aliceOnB, ch2, "m1")
	wantUpdate(t, updates, "UPDATED LAST_MESSAGE last=0 unread=1")
	var ev addedEvent
	for _, want := range []string{"m0", "m1"} {
		mustJSON(t, added.Next(t, eventWait), &ev)
		if ev.MessageAdded.Body != want {
			t.Fatalf("messageAdded(channelIds) on A: %+v, want %s", ev, want)
		}
	}
	bobOnB.Do(markRead, map[string]any{"c": ch1, "i": 0}, nil)
	reads.Next(t, eventWait)
	clock.Advance(time.Second)
	wantUpdate(t, updates, "UPDATED LAST_READ last=0 unread=0")

	rtRename(t, b.Client("carol"), "Carol")
	rtWantRenamed(t, users.Next(t, eventWait), "carol", "Carol")

	exp := expiryOf(t, a, a.Token("bob"))
	clock.Advance(exp.Add(-time.Minute).Sub(clock.Now()) + time.Minute)
	var se sessionEventData
	mustJSON(t, session.Next(t, eventWait), &se)
	if se.SessionEvents.Type != "EXPIRING" {
		t.Fatalf("sessionEvents on A: %+v", se)
	}
}
