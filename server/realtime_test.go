package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// eventWait bounds how long a test waits for an event that must come.
const eventWait = 10 * time.Second

// quiet is how long a test watches for an event that must not come.
const quiet = 300 * time.Millisecond

const messageAddedSub = `subscription($c: ID, $after: Int) { messageAdded(channelId: $c, afterIndex: $after) {
	id index body channel { id } author { identity } } }`

type addedEvent struct {
	MessageAdded struct {
		ID      string
		Index   int
		Body    string
		Channel struct{ ID string }
		Author  struct{ Identity string }
	}
}

// readier is a subscription, connection or event stream that can wait
// until it is live on the server.
type readier interface{ Ready(t testing.TB) }

// ready waits until what subs started is live on the server, so that an
// event published next reaches it: neither WebSocket protocol
// acknowledges a subscribe, so a query on the same connection, which the
// server starts after it, is answered first (WSConn.Ready); an event
// stream waits for the server's ": live" comment (SSEStream.Ready).
func ready(t *testing.T, subs ...readier) {
	t.Helper()
	for _, s := range subs {
		s.Ready(t)
	}
}

func nextAdded(t *testing.T, sub *parleytest.WSSub) addedEvent {
	t.Helper()
	var ev addedEvent
	if err := json.Unmarshal(sub.Next(t, eventWait), &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestMessageAddedLiveAndReplay(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		for i := range 3 {
			mustSend(t, alice, ch, fmt.Sprintf("old %d", i))
		}

		ws := srv.Dial(t, "bob")
		live := ws.Subscribe(messageAddedSub, map[string]any{"c": ch})
		replay := ws.Subscribe(messageAddedSub, map[string]any{"c": ch, "after": 0})
		for _, want := range []int{1, 2} {
			if ev := nextAdded(t, replay); ev.MessageAdded.Index != want || ev.MessageAdded.Body != fmt.Sprintf("old %d", want) {
				t.Fatalf("replayed %+v, want index %d", ev, want)
			}
		}
		live.NoEvent(t, quiet)

		sent := mustSend(t, alice, ch, "new")
		for _, sub := range []*parleytest.WSSub{live, replay} {
			ev := nextAdded(t, sub).MessageAdded
			if ev.ID != sent.ID || ev.Index != 3 || ev.Author.Identity != "alice" || ev.Channel.ID != ch {
				t.Fatalf("live event %+v, want message %+v", ev, sent)
			}
		}
		_ = bob
	})
}

// TestMessageAddedReplayRace: messages sent while the subscription replays
// history arrive exactly once, in index order.
func TestMessageAddedReplayRace(t *testing.T) {
	t.Parallel()
	const senders, each = 4, 15
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner := srv.Client("owner")
		ids := make([]string, senders)
		for i := range ids {
			ids[i] = fmt.Sprintf("s%d", i)
		}
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE", "members": ids})
		for i := range 10 {
			mustSend(t, owner, ch, fmt.Sprintf("before %d", i))
		}
		ws := srv.Dial(t, "owner")
		var wg sync.WaitGroup
		for _, id := range ids {
			c := srv.Client(id)
			wg.Go(func() {
				for i := range each {
					if r := c.Post(sendMessage, map[string]any{"c": ch, "b": fmt.Sprintf("%s %d", id, i)}); len(r.Errors) > 0 {
						t.Errorf("send: %+v", r.Errors)
						return
					}
				}
			})
		}
		sub := ws.Subscribe(messageAddedSub, map[string]any{"c": ch, "after": -1})
		total := 10 + senders*each
		for want := range total {
			if ev := nextAdded(t, sub); ev.MessageAdded.Index != want {
				t.Fatalf("event %d has index %d", want, ev.MessageAdded.Index)
			}
		}
		wg.Wait()
		sub.NoEvent(t, quiet)
	})
}

func TestMessageAddedAllMyChannels(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		one := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		two := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "members": []string{"bob"}})
		three := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})

		sub := srv.Dial(t, "bob").Subscribe(messageAddedSub, nil)
		ready(t, sub)
		mustSend(t, alice, one, "in one")
		mustSend(t, alice, three, "in three, bob is not there")
		mustSend(t, alice, two, "in two")
		for _, want := range []string{"in one", "in two"} {
			if ev := nextAdded(t, sub); ev.MessageAdded.Body != want {
				t.Fatalf("got %q, want %q", ev.MessageAdded.Body, want)
			}
		}
		alice.Do(`mutation($c: ID!) { addMember(channelId: $c, identity: "bob") { id } }`, map[string]any{"c": three}, nil)
		mustSend(t, alice, three, "bob was added")
		if ev := nextAdded(t, sub); ev.MessageAdded.Body != "bob was added" || ev.MessageAdded.Index != 1 {
			t.Fatalf("after joining: %+v", ev)
		}
		srv.Client("bob").Do(`mutation($c: ID!) { leaveChannel(channelId: $c) }`, map[string]any{"c": one}, nil)
		mustSend(t, alice, one, "bob left")
		mustSend(t, alice, two, "still here")
		if ev := nextAdded(t, sub); ev.MessageAdded.Body != "still here" {
			t.Fatalf("after leaving: %+v", ev)
		}
		srv.Dial(t, "bob").Subscribe(messageAddedSub, map[string]any{"after": 0}).Err(t, eventWait)
	})
}

func TestMessageUpdatedAndRemoved(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		m := mustSend(t, alice, ch, "draft")
		ws := srv.Dial(t, "bob")
		updated := ws.Subscribe(`subscription($c: ID!) { messageUpdated(channelId: $c) { id body editedAt } }`, map[string]any{"c": ch})
		removed := ws.Subscribe(`subscription($c: ID!) { messageRemoved(channelId: $c) { id index body deletedAt } }`, map[string]any{"c": ch})
		ready(t, ws)

		alice.Do(`mutation($id: ID!) { editMessage(id: $id, body: "final") { id } }`, map[string]any{"id": m.ID}, nil)
		var up struct{ MessageUpdated struct{ ID, Body string } }
		mustJSON(t, updated.Next(t, eventWait), &up)
		if up.MessageUpdated.ID != m.ID || up.MessageUpdated.Body != "final" {
			t.Fatalf("messageUpdated = %+v", up)
		}
		removed.NoEvent(t, quiet)

		alice.Do(`mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": m.ID}, nil)
		var rm struct {
			MessageRemoved struct {
				ID, Body  string
				Index     int
				DeletedAt *string
			}
		}
		mustJSON(t, removed.Next(t, eventWait), &rm)
		if rm.MessageRemoved.ID != m.ID || rm.MessageRemoved.Body != "" || rm.MessageRemoved.DeletedAt == nil {
			t.Fatalf("messageRemoved = %+v", rm)
		}
		updated.NoEvent(t, quiet)
	})
}

func TestTyping(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{TypingTimeout: 400 * time.Millisecond})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		const startedSub = `subscription($c: ID!) { typingStarted(channelId: $c) { user { identity } channel { id } at } }`
		const endedSub = `subscription($c: ID!) { typingEnded(channelId: $c) { user { identity } } }`
		bobWS, aliceWS := srv.Dial(t, "bob"), srv.Dial(t, "alice")
		started, ended := bobWS.Subscribe(startedSub, map[string]any{"c": ch}), bobWS.Subscribe(endedSub, map[string]any{"c": ch})
		ownStarted := aliceWS.Subscribe(startedSub, map[string]any{"c": ch})
		ready(t, bobWS, aliceWS)

		startTyping := func() {
			var out struct{ StartTyping bool }
			alice.Do(`mutation($c: ID!) { startTyping(channelId: $c) }`, map[string]any{"c": ch}, &out)
			if !out.StartTyping {
				t.Fatal("startTyping returned false")
			}
		}
		startTyping()
		var ev struct {
			TypingStarted struct {
				User    struct{ Identity string }
				Channel struct{ ID string }
				At      string
			}
		}
		mustJSON(t, started.Next(t, eventWait), &ev)
		if ev.TypingStarted.User.Identity != "alice" || ev.TypingStarted.Channel.ID != ch || ev.TypingStarted.At == "" {
			t.Fatalf("typingStarted = %+v", ev)
		}
		ownStarted.NoEvent(t, quiet)
		var end struct {
			TypingEnded struct{ User struct{ Identity string } }
		}
		mustJSON(t, ended.Next(t, eventWait), &end)
		if end.TypingEnded.User.Identity != "alice" {
			t.Fatalf("typingEnded = %+v", end)
		}

		// Sending a message ends the spell at once, long before the timeout.
		srv2 := parleytest.NewServer(t, b, parleytest.Options{TypingTimeout: time.Hour, DatabaseURL: srv.DatabaseURL, Broker: srv.Broker})
		a2 := srv2.Client("alice")
		a2.Do(`mutation($c: ID!) { startTyping(channelId: $c) }`, map[string]any{"c": ch}, nil)
		started.Next(t, eventWait)
		a2.Do(`mutation($c: ID!) { startTyping(channelId: $c) }`, map[string]any{"c": ch}, nil)
		started.NoEvent(t, quiet)
		mustSend(t, a2, ch, "done typing")
		mustJSON(t, ended.Next(t, eventWait), &end)
		_ = bob
	})
}

func TestMemberEvents(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob, carol := srv.Client("alice"), srv.Client("bob"), srv.Client("carol")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "members": []string{"bob"}})
		mustSend(t, alice, ch, "hi")
		ws := srv.Dial(t, "bob")
		joined := ws.Subscribe(`subscription($c: ID!) { memberJoined(channelId: $c) { role user { identity } } }`, map[string]any{"c": ch})
		left := ws.Subscribe(`subscription($c: ID!) { memberLeft(channelId: $c) { user { identity } } }`, map[string]any{"c": ch})
		updated := ws.Subscribe(`subscription($c: ID!) { memberUpdated(channelId: $c) { member { role lastReadIndex user { identity } } reasons } }`, map[string]any{"c": ch})
		ready(t, ws)

		carol.Do(`mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": ch}, nil)
		var j struct {
			MemberJoined struct {
				Role string
				User struct{ Identity string }
			}
		}
		mustJSON(t, joined.Next(t, eventWait), &j)
		if j.MemberJoined.User.Identity != "carol" || j.MemberJoined.Role != "MEMBER" {
			t.Fatalf("memberJoined = %+v", j)
		}

		carol.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, map[string]any{"c": ch}, nil)
		var u struct {
			MemberUpdated struct {
				Member struct {
					Role          string
					LastReadIndex *int
					User          struct{ Identity string }
				}
				Reasons []string
			}
		}
		mustJSON(t, updated.Next(t, eventWait), &u)
		if u.MemberUpdated.Member.User.Identity != "carol" || *u.MemberUpdated.Member.LastReadIndex != 0 || fmt.Sprint(u.MemberUpdated.Reasons) != "[LAST_READ]" {
			t.Fatalf("memberUpdated = %+v", u)
		}
		carol.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, map[string]any{"c": ch}, nil)
		updated.NoEvent(t, quiet)

		alice.Do(`mutation($c: ID!) { leaveChannel(channelId: $c) }`, map[string]any{"c": ch}, nil)
		var l struct {
			MemberLeft struct{ User struct{ Identity string } }
		}
		mustJSON(t, left.Next(t, eventWait), &l)
		if l.MemberLeft.User.Identity != "alice" {
			t.Fatalf("memberLeft = %+v", l)
		}
		mustJSON(t, updated.Next(t, eventWait), &u)
		if u.MemberUpdated.Member.User.Identity != "bob" || u.MemberUpdated.Member.Role != "OWNER" || fmt.Sprint(u.MemberUpdated.Reasons) != "[ROLE]" {
			t.Fatalf("successor event = %+v", u)
		}
		_ = bob
	})
}

// TestSubscriptionRules: subscriptions follow the query rules, and end at
// once when the subscriber is removed from the channel.
func TestSubscriptionRules(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		private := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		public := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC"})
		mallory := srv.Dial(t, "mallory")
		for _, tc := range []struct {
			channel, code string
		}{{private, "NOT_FOUND"}, {public, "FORBIDDEN"}, {"no-such-channel", "NOT_FOUND"}} {
			errs := mallory.Subscribe(messageAddedSub, map[string]any{"c": tc.channel}).Err(t, eventWait)
			if errs[0].Code() != tc.code {
				t.Errorf("mallory subscribing to %s: %+v, want %s", tc.channel, errs, tc.code)
			}
		}
		bobWS := srv.Dial(t, "bob")
		sub := bobWS.Subscribe(messageAddedSub, map[string]any{"c": private})
		typing := bobWS.Subscribe(`subscription($c: ID!) { typingStarted(channelId: $c) { at } }`, map[string]any{"c": private})
		ready(t, bobWS)
		mustSend(t, alice, private, "before")
		nextAdded(t, sub)
		alice.Do(`mutation($c: ID!) { removeMember(channelId: $c, identity: "bob") }`, map[string]any{"c": private}, nil)
		for _, s := range []*parleytest.WSSub{sub, typing} {
			if errs := s.Err(t, eventWait); errs[0].Code() != "FORBIDDEN" {
				t.Fatalf("after removal: %+v, want FORBIDDEN", errs)
			}
		}
	})
}

func TestChannelEvents(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		sub := srv.Dial(t, "bob").Subscribe(`subscription { channelEvents { type channel { id friendlyName } } }`, nil)
		ready(t, sub)
		next := func(wantType string) string {
			t.Helper()
			var ev struct {
				ChannelEvents struct {
					Type    string
					Channel struct{ ID, FriendlyName string }
				}
			}
			mustJSON(t, sub.Next(t, eventWait), &ev)
			if ev.ChannelEvents.Type != wantType {
				t.Fatalf("channelEvents = %+v, want %s", ev, wantType)
			}
			return ev.ChannelEvents.Channel.ID
		}
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "friendlyName": "a", "members": []string{"bob"}})
		if id := next("ADDED"); id != ch {
			t.Fatalf("ADDED for %s, want %s", id, ch)
		}
		alice.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "b"}) { id } }`, map[string]any{"c": ch}, nil)
		next("UPDATED")
		pub := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC"})
		bob.Do(`mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": pub}, nil)
		next("JOINED")
		bob.Do(`mutation($c: ID!) { leaveChannel(channelId: $c) }`, map[string]any{"c": pub}, nil)
		next("LEFT")
		alice.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "not for bob"}) { id } }`, map[string]any{"c": pub}, nil)
		sub.NoEvent(t, quiet)
		alice.Do(`mutation($c: ID!) { deleteChannel(id: $c) }`, map[string]any{"c": ch}, nil)
		next("REMOVED")
	})
}

func TestUserUpdatedAndPresence(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		alice.Do(`{ me { id } }`, nil, nil)
		sub := srv.Dial(t, "bob").Subscribe(`subscription { userUpdated(identity: "alice") { user { identity friendlyName online } reasons } }`, nil)
		type userEv struct {
			UserUpdated struct {
				User struct {
					Identity     string
					FriendlyName *string
					Online       bool
				}
				Reasons []string
			}
		}
		var ev userEv
		ready(t, sub)
		alice.Do(`mutation { updateMe(input: {friendlyName: "Alice"}) { id } }`, nil, nil)
		mustJSON(t, sub.Next(t, eventWait), &ev)
		if *ev.UserUpdated.User.FriendlyName != "Alice" || fmt.Sprint(ev.UserUpdated.Reasons) != "[FRIENDLY_NAME]" || ev.UserUpdated.User.Online {
			t.Fatalf("userUpdated = %+v", ev)
		}

		first := srv.Dial(t, "alice")
		mustJSON(t, sub.Next(t, eventWait), &ev)
		if !ev.UserUpdated.User.Online || fmt.Sprint(ev.UserUpdated.Reasons) != "[ONLINE]" {
			t.Fatalf("online event = %+v", ev)
		}
		second := srv.Dial(t, "alice")
		sub.NoEvent(t, quiet)
		var me struct{ Me struct{ Online bool } }
		alice.Do(`{ me { online } }`, nil, &me)
		if !me.Me.Online {
			t.Fatal("me.online is false while alice holds two connections")
		}
		first.Close()
		sub.NoEvent(t, quiet)
		second.Close()
		mustJSON(t, sub.Next(t, eventWait), &ev)
		if ev.UserUpdated.User.Online || fmt.Sprint(ev.UserUpdated.Reasons) != "[ONLINE]" {
			t.Fatalf("offline event = %+v", ev)
		}
		if errs := srv.Dial(t, "bob").Subscribe(`subscription { userUpdated(identity: "nobody") { reasons } }`, nil).Err(t, eventWait); errs[0].Code() != "NOT_FOUND" {
			t.Fatalf("userUpdated(nobody) = %+v", errs)
		}
	})
}

func mustJSON(t *testing.T, data json.RawMessage, out any) {
	t.Helper()
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

// TestSlowSubscriber: a connection that stops reading is closed with 1013
// (try again later) once its queue overflows, after the messages it had;
// the publisher and the other subscribers are not held up, and the slow
// one reconnects and resumes with afterIndex without a gap. It runs on
// SQLite only: it moves megabytes, slow under the race detector, and what
// it tests (the transport's queue, given here) does not depend on the
// database.
func TestSlowSubscriber(t *testing.T) {
	t.Parallel()
	// The messages must overflow the socket buffers between server and
	// client, then the connection's queue of 4.
	const bodySize = 400_000
	messages := stallingMessages(t, bodySize)
	b := parleytest.Backends()[0]
	t.Run(b.Name, func(t *testing.T) {
		srv := parleytest.NewServer(t, b, parleytest.Options{
			ChatLimits: chat.Limits{MaxBodyBytes: 1 << 20},
			// A write that stalls this long would end the connection
			// without a close frame (TestWriteTimeout); here the queue
			// overflows first.
			WebSocket: server.WebSocketOptions{QueueLength: 4, WriteTimeout: 5 * time.Minute},
		})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob", "carol"}})
		fast := srv.Dial(t, "carol").Subscribe(messageAddedSub, map[string]any{"c": ch})
		slowConn := srv.Dial(t, "bob", parleytest.WithPausedReading())
		slow := slowConn.Subscribe(messageAddedSub, map[string]any{"c": ch})
		ready(t, fast, slowConn)

		body := func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("x", bodySize) }
		for i := range messages {
			mustSend(t, alice, ch, body(i))
			if ev := nextAdded(t, fast); ev.MessageAdded.Index != i || ev.MessageAdded.Body != body(i) {
				t.Fatalf("fast subscriber: message %d is index %d", i, ev.MessageAdded.Index)
			}
		}

		slowConn.Resume()
		last := -1
		for {
			ev, err := slow.Wait(eventWait)
			if err != nil {
				break // the connection closed
			}
			var added addedEvent
			mustJSON(t, ev, &added)
			if added.MessageAdded.Index != last+1 {
				t.Fatalf("slow subscriber got index %d after %d", added.MessageAdded.Index, last)
			}
			last = added.MessageAdded.Index
		}
		if last == messages-1 {
			t.Fatalf("slow subscriber got all %d messages: its socket never stalled, so this test proves nothing", messages)
		}
		if code := slowConn.CloseCode(t, eventWait); code != server.CloseTryAgainLater {
			t.Fatalf("slow connection closed with %d, want %d", code, server.CloseTryAgainLater)
		}
		t.Logf("the slow subscriber received %d of %d messages, then its connection closed with 1013", last+1, messages)
		resumed := srv.Dial(t, "bob").Subscribe(messageAddedSub, map[string]any{"c": ch, "after": last})
		for want := last + 1; want < messages; want++ {
			if ev := nextAdded(t, resumed); ev.MessageAdded.Index != want {
				t.Fatalf("resumed subscriber got index %d, want %d", ev.MessageAdded.Index, want)
			}
		}
	})
}

// TestSubscribersShareOnlyViewerIndependentResults: subscriptions with the
// same document get one execution per event when every selected field is
// the same for every viewer; a selection with per-viewer fields
// (unreadCount, myMembership) still gets each viewer's own values.
func TestSubscribersShareOnlyViewerIndependentResults(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob", "carol"}})
		mustSend(t, alice, ch, "one")
		mustSend(t, alice, ch, "two")
		bob.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 1) { id } }`, map[string]any{"c": ch}, nil)

		const shared = `subscription($c: ID) { messageAdded(channelId: $c) { index body author { identity } channel { messagesCount } } }`
		const own = `subscription($c: ID) { messageAdded(channelId: $c) { index channel { unreadCount myMembership { user { identity } } } } }`
		type ownEvent struct {
			MessageAdded struct {
				Index   int
				Channel struct {
					UnreadCount  int
					MyMembership struct{ User struct{ Identity string } }
				}
			}
		}
		var sharedSubs, ownSubs []*parleytest.WSSub
		for _, who := range []string{"bob", "carol"} {
			ws := srv.Dial(t, who)
			sharedSubs = append(sharedSubs, ws.Subscribe(shared, map[string]any{"c": ch}))
			ownSubs = append(ownSubs, ws.Subscribe(own, map[string]any{"c": ch}))
			ready(t, ws)
		}
		mustSend(t, alice, ch, "three")

		want := `{"messageAdded":{"index":2,"body":"three","author":{"identity":"alice"},"channel":{"messagesCount":3}}}`
		for i, sub := range sharedSubs {
			if got := string(sub.Next(t, eventWait)); got != want {
				t.Errorf("subscriber %d: %s, want %s", i, got, want)
			}
		}
		for i, who := range []struct {
			identity string
			unread   int
		}{{"bob", 1}, {"carol", 3}} {
			var ev ownEvent
			mustJSON(t, ownSubs[i].Next(t, eventWait), &ev)
			c := ev.MessageAdded.Channel
			if ev.MessageAdded.Index != 2 || c.UnreadCount != who.unread || c.MyMembership.User.Identity != who.identity {
				t.Errorf("%s's own view: %+v, want unreadCount %d and their own membership", who.identity, ev, who.unread)
			}
		}
	})
}

// stallingMessages is how many messages of size bytes a test must send to a
// client that does not read before the server's writes to it block and its
// subscription's buffer (4) overflows, with a margin: the kernel's socket
// buffers hold up to net.ipv4.tcp_wmem's maximum on the server's side and
// tcp_rmem's default on the client's (Linux; 4 MiB and 128 KiB unless
// tuned, assumed where /proc does not say).
func stallingMessages(t *testing.T, size int) int {
	t.Helper()
	buffered := 4<<20 + 128<<10
	wmem, werr := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	rmem, rerr := os.ReadFile("/proc/sys/net/ipv4/tcp_rmem")
	if werr == nil && rerr == nil {
		w, r := strings.Fields(string(wmem)), strings.Fields(string(rmem))
		if len(w) == 3 && len(r) == 3 {
			wmax, err1 := strconv.Atoi(w[2])
			rdef, err2 := strconv.Atoi(r[1])
			if err1 == nil && err2 == nil {
				buffered = wmax + rdef
			}
		}
	}
	const queued, inFlight, margin = 4, 2, 12 // the queue, frames being written, a margin
	n := (buffered+size-1)/size + queued + inFlight + margin
	t.Logf("socket buffers hold up to %d bytes: sending %d messages of %d bytes", buffered, n, size)
	return n
}
