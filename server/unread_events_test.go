package server_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/hub/hubtest"
	"github.com/parleychat/parley/parleytest"
)

// These tests cover unreadChanged: which changes of the caller's unread
// state send an event (messages that count arriving or deleted, every way
// of reading, joining and leaving), which do not (own and system messages
// that read nothing, other users' reads, channels of others), coalescing
// on a clock the test moves, the three transports, per-viewer results and
// two nodes. "Nothing came" is shown by the next event being the one a
// later change causes: a subscription's events reach its client in order.

const unreadSub = `subscription { unreadChanged { channel { id } unreadCount unreadMentionsCount summary { channels messages mentions } } }`

type unreadData struct {
	UnreadChanged struct {
		Channel             struct{ ID string }
		UnreadCount         int
		UnreadMentionsCount int
		Summary             struct{ Channels, Messages, Mentions int }
	}
}

// String shows the event as "name unread=N mentions=M summary=C/M/X",
// with the channel's id replaced by its name in names.
func (d unreadData) String(names map[string]string) string {
	e := d.UnreadChanged
	name, ok := names[e.Channel.ID]
	if !ok {
		name = e.Channel.ID
	}
	return fmt.Sprintf("%s unread=%d mentions=%d summary=%d/%d/%d", name, e.UnreadCount, e.UnreadMentionsCount,
		e.Summary.Channels, e.Summary.Messages, e.Summary.Mentions)
}

// unreadStream is what parleytest's WebSocket subscriptions and SSE
// streams have in common.
type unreadStream interface {
	Next(t testing.TB, timeout time.Duration) json.RawMessage
}

// wantUnread checks the next unreadChanged event of sub.
func wantUnread(t *testing.T, sub unreadStream, names map[string]string, want string) {
	t.Helper()
	var d unreadData
	mustJSON(t, sub.Next(t, eventWait), &d)
	if got := d.String(names); got != want {
		t.Fatalf("unreadChanged: got %q, want %q", got, want)
	}
}

// waitSubscriptions returns once srv's hub has n live subscriptions: the
// readiness of an SSE stream, which says nothing when its subscription
// starts.
func waitSubscriptions(t *testing.T, srv *parleytest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for srv.Hub.Subscriptions() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d live subscriptions after %v, want %d", srv.Hub.Subscriptions(), eventWait, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const (
	setReadHorizon = `mutation($c: ID!, $i: Int) { setReadHorizon(channelId: $c, index: $i) { lastReadIndex } }`
	markAllRead    = `mutation { markAllRead }`
	deleteMessage  = `mutation($id: ID!) { deleteMessage(id: $id) { id } }`
)

// TestUnreadChanged: every change of bob's unread state sends him an event
// with his counts and summary as they are at delivery, coalesced per
// channel and second; own and system messages that read nothing, other
// users' reads and channels he is not in send nothing.
func TestUnreadChanged(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		clock := hubtest.New(time.Now())
		srv := parleytest.NewServer(t, b, parleytest.Options{Clock: clock, SystemMessages: true})
		alice, bob, carol := srv.Client("alice"), srv.Client("bob"), srv.Client("carol")
		carol.Do(`{ me { id } }`, nil, nil)
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		two := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		names := map[string]string{ch: "ch", two: "two"}
		bob.Do(markAllRead, nil, nil) // the system messages of the set-up: nothing unread, nothing behind

		conn := srv.Dial(t, "bob")
		unread := conn.Subscribe(unreadSub, nil)
		// Readiness for coalescing: messageAdded arrives in the same
		// dispatch as the message's unread update, so once it arrives the
		// update was decided.
		added := conn.Subscribe(`subscription($c: ID!) { messageAdded(channelId: $c) { index } }`, map[string]any{"c": ch})
		ready(t, conn)
		// carol is in neither channel: she hears of nothing until she is
		// added to one.
		carolConn := srv.Dial(t, "carol")
		carolUnread := carolConn.Subscribe(unreadSub, nil)
		ready(t, carolConn)

		// A message arrives: at once, with the counts and the summary.
		mustSend(t, alice, ch, "m0")
		added.Next(t, eventWait)
		wantUnread(t, unread, names, "ch unread=1 mentions=0 summary=1/1/0")

		// Bob's own message while nothing is unread, a system message
		// and alice reading change nothing of bob's: the next event is
		// the one of alice's message after them.
		mustSend(t, bob, two, "own")
		alice.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "Two"}) { id } }`, map[string]any{"c": two}, nil)
		alice.Do(setReadHorizon, map[string]any{"c": two, "i": nil}, nil)
		mustSend(t, alice, two, "t0")
		wantUnread(t, unread, names, "two unread=1 mentions=0 summary=2/2/0")

		// Coalescing: the first message after a quiet window goes out at
		// once, the two within its second wait for its end and go out as
		// one event with the newest counts.
		clock.Advance(time.Second)
		m1 := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "@bob", "mentions": []string{"bob"}})
		added.Next(t, eventWait)
		wantUnread(t, unread, names, "ch unread=2 mentions=1 summary=2/3/1")
		mustSend(t, alice, ch, "m2")
		m3 := mustSend(t, alice, ch, "m3")
		added.Next(t, eventWait)
		added.Next(t, eventWait)
		unread.NoEvent(t, quiet)
		clock.Advance(time.Second)
		wantUnread(t, unread, names, "ch unread=4 mentions=1 summary=2/5/1")

		// A deletion lowers the counts.
		clock.Advance(time.Second)
		alice.Do(deleteMessage, map[string]any{"id": m3.ID}, nil)
		wantUnread(t, unread, names, "ch unread=3 mentions=1 summary=2/4/1")

		// Every way of reading: markRead, setReadHorizon (back too).
		clock.Advance(time.Second)
		bob.Do(markRead, map[string]any{"c": ch, "i": m1.Index}, nil)
		wantUnread(t, unread, names, "ch unread=1 mentions=0 summary=2/2/0")
		clock.Advance(time.Second)
		bob.Do(setReadHorizon, map[string]any{"c": ch, "i": nil}, nil)
		wantUnread(t, unread, names, "ch unread=3 mentions=1 summary=2/4/1")

		// Bob's own message reads the channel up to it.
		clock.Advance(time.Second)
		mustSend(t, bob, ch, "read by sending")
		added.Next(t, eventWait)
		wantUnread(t, unread, names, "ch unread=0 mentions=0 summary=1/1/0")

		// markAllRead: one event per channel it moved (two, not ch).
		clock.Advance(time.Second)
		bob.Do(markAllRead, nil, nil)
		wantUnread(t, unread, names, "two unread=0 mentions=0 summary=0/0/0")

		// Removed from ch: one last event, then nothing from ch.
		clock.Advance(time.Second)
		mustSend(t, alice, ch, "m4")
		added.Next(t, eventWait)
		wantUnread(t, unread, names, "ch unread=1 mentions=0 summary=1/1/0")
		alice.Do(`mutation($c: ID!) { removeMember(channelId: $c, identity: "bob") }`, map[string]any{"c": ch}, nil)
		wantUnread(t, unread, names, "ch unread=0 mentions=0 summary=0/0/0")
		mustSend(t, alice, ch, "after bob left")
		clock.Advance(time.Second)
		mustSend(t, alice, two, "t1")
		wantUnread(t, unread, names, "two unread=1 mentions=0 summary=1/1/0")

		// carol's first event is her own: being added to two.
		alice.Do(`mutation($c: ID!) { addMember(channelId: $c, identity: "carol") { id } }`, map[string]any{"c": two}, nil)
		var d unreadData
		mustJSON(t, carolUnread.Next(t, eventWait), &d)
		if d.UnreadChanged.Channel.ID != two {
			t.Fatalf("carol's first unreadChanged is %s, want two's (she was added to it)", d.String(names))
		}
	})
}

// TestUnreadChangedTransports: unreadChanged over graphql-transport-ws,
// legacy graphql-ws and server-sent events; and two viewers with the same
// document each get their own counts, not one shared result.
func TestUnreadChangedTransports(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob", "carol"}})
		names := map[string]string{ch: "ch"}
		mustSend(t, alice, ch, "one")
		bob.Do(markRead, map[string]any{"c": ch, "i": 0}, nil) // bob read "one", carol did not

		var bobs []unreadStream
		for _, opts := range [][]parleytest.DialOption{nil, {parleytest.WithLegacyProtocol()}} {
			conn := srv.Dial(t, "bob", opts...)
			s := conn.Subscribe(unreadSub, nil)
			ready(t, conn)
			bobs = append(bobs, s)
		}
		carolConn := srv.Dial(t, "carol")
		carol := carolConn.Subscribe(unreadSub, nil)
		ready(t, carolConn)
		sse := srv.SSE(t, "bob", unreadSub, nil)
		waitSubscriptions(t, srv, 4)
		bobs = append(bobs, sse)

		mustSend(t, alice, ch, "two")
		for _, s := range bobs {
			wantUnread(t, s, names, "ch unread=1 mentions=0 summary=1/1/0")
		}
		wantUnread(t, carol, names, "ch unread=2 mentions=0 summary=1/2/0")
	})
}

// TestTwoNodesUnreadChanged: bob's unreadChanged on node A follows what
// happens on node B: messages, a deletion, markRead, setReadHorizon and
// markAllRead.
func TestTwoNodesUnreadChanged(t *testing.T) {
	nodes := parleytest.MultiNode(t)
	clock := hubtest.New(time.Now())
	a := parleytest.NewServer(t, nodes, parleytest.Options{Clock: clock})
	b := parleytest.NewServer(t, nodes, parleytest.Options{DatabaseURL: a.DatabaseURL, Clock: clock})
	aliceOnB, bobOnB := b.Client("alice"), b.Client("bob")
	ch := mustCreateChannel(t, aliceOnB, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
	names := map[string]string{ch: "ch"}

	conn := a.Dial(t, "bob")
	unread := conn.Subscribe(unreadSub, nil)
	ready(t, conn)

	m0 := mustSend(t, aliceOnB, ch, "m0")
	wantUnread(t, unread, names, "ch unread=1 mentions=0 summary=1/1/0")
	clock.Advance(time.Second)
	m1 := mustSend(t, aliceOnB, ch, "m1")
	wantUnread(t, unread, names, "ch unread=2 mentions=0 summary=1/2/0")
	clock.Advance(time.Second)
	aliceOnB.Do(deleteMessage, map[string]any{"id": m1.ID}, nil)
	wantUnread(t, unread, names, "ch unread=1 mentions=0 summary=1/1/0")
	clock.Advance(time.Second)
	bobOnB.Do(markRead, map[string]any{"c": ch, "i": m0.Index}, nil)
	wantUnread(t, unread, names, "ch unread=0 mentions=0 summary=0/0/0")
	clock.Advance(time.Second)
	bobOnB.Do(setReadHorizon, map[string]any{"c": ch, "i": nil}, nil)
	wantUnread(t, unread, names, "ch unread=1 mentions=0 summary=1/1/0")
	clock.Advance(time.Second)
	bobOnB.Do(markAllRead, nil, nil)
	wantUnread(t, unread, names, "ch unread=0 mentions=0 summary=0/0/0")
}
