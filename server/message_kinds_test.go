package server_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/parleytest"
)

// sendInput sends sendMessage(input: in) as c and returns the response.
func sendInput(c *parleytest.Client, in map[string]any) *parleytest.Response {
	return c.Post(`mutation($in: SendMessageInput!) { sendMessage(input: $in) {
		id index body type origin priority senderDisplayName clientMessageId location { latitude longitude }
		mentions { identity } } }`, map[string]any{"in": in})
}

// sentMessage is sendInput's selection.
type sentMessage struct {
	ID                string
	Index             int
	Body              string
	Type              string
	Origin            string
	Priority          string
	SenderDisplayName *string
	ClientMessageID   *string
	Location          *struct{ Latitude, Longitude float64 }
	Mentions          []struct{ Identity string }
}

func mustSendInput(t *testing.T, c *parleytest.Client, in map[string]any) sentMessage {
	t.Helper()
	var out struct{ SendMessage sentMessage }
	callOK(t, c, `mutation($in: SendMessageInput!) { sendMessage(input: $in) {
		id index body type origin priority senderDisplayName clientMessageId location { latitude longitude }
		mentions { identity } } }`, map[string]any{"in": in}, &out)
	return out.SendMessage
}

// lastIndex is the channel's lastMessageIndex as c sees it (-1 for none).
func lastIndex(t *testing.T, c *parleytest.Client, ch string) int {
	t.Helper()
	var out struct {
		Channel struct{ LastMessageIndex *int }
	}
	callOK(t, c, `query($c: ID!) { channel(id: $c) { lastMessageIndex } }`, map[string]any{"c": ch}, &out)
	if out.Channel.LastMessageIndex == nil {
		return -1
	}
	return *out.Channel.LastMessageIndex
}

// TestMessageTypesAndLocation: a message's type follows what it carries; a
// location is range-checked at its limits; the body may be left out when a
// location is given, and a message with nothing is refused and writes
// nothing; priority, origin and senderDisplayName take their defaults.
func TestMessageTypesAndLocation(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		callOK(t, alice, `mutation { updateMe(input: {friendlyName: "Alice A."}) { id } }`, nil, nil)
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})

		text := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "hi"})
		if text.Type != "TEXT" || text.Origin != "USER" || text.Priority != "NORMAL" || text.Location != nil ||
			text.SenderDisplayName == nil || *text.SenderDisplayName != "Alice A." || len(text.Mentions) != 0 {
			t.Errorf("text message %+v", text)
		}
		loc := mustSendInput(t, alice, map[string]any{"channelId": ch, "location": map[string]any{"latitude": 90, "longitude": -180},
			"priority": "HIGH", "senderDisplayName": "Ops"})
		if loc.Type != "LOCATION" || loc.Body != "" || loc.Location == nil || loc.Location.Latitude != 90 || loc.Location.Longitude != -180 ||
			loc.Priority != "HIGH" || *loc.SenderDisplayName != "Ops" {
			t.Errorf("location message %+v", loc)
		}
		both := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "here", "location": map[string]any{"latitude": -90, "longitude": 180}})
		if both.Type != "LOCATION" || both.Body != "here" {
			t.Errorf("location with a body %+v", both)
		}

		last := lastIndex(t, alice, ch)
		for name, in := range map[string]map[string]any{
			"nothing":          {"channelId": ch},
			"empty body":       {"channelId": ch, "body": ""},
			"latitude over":    {"channelId": ch, "location": map[string]any{"latitude": 90.000001, "longitude": 0}},
			"latitude under":   {"channelId": ch, "location": map[string]any{"latitude": -90.5, "longitude": 0}},
			"longitude over":   {"channelId": ch, "location": map[string]any{"latitude": 0, "longitude": 180.1}},
			"longitude under":  {"channelId": ch, "location": map[string]any{"latitude": 0, "longitude": -181}},
			"display name":     {"channelId": ch, "body": "x", "senderDisplayName": strings.Repeat("n", 257)},
			"unknown priority": {"channelId": ch, "body": "x", "priority": "URGENT"},
		} {
			r := sendInput(alice, in)
			if len(r.Errors) == 0 || (r.Code() != "BAD_USER_INPUT" && r.Code() != "GRAPHQL_VALIDATION_FAILED") {
				t.Errorf("%s: want BAD_USER_INPUT, got %s %+v", name, r.Data, r.Errors)
			}
		}
		if got := lastIndex(t, alice, ch); got != last {
			t.Errorf("refused sends moved lastMessageIndex from %d to %d", last, got)
		}
		// Deleting a location message removes the location.
		var del struct {
			DeleteMessage struct{ Location *struct{ Latitude float64 } }
		}
		callOK(t, alice, `mutation($id: ID!) { deleteMessage(id: $id) { location { latitude } } }`, map[string]any{"id": loc.ID}, &del)
		if del.DeleteMessage.Location != nil {
			t.Errorf("a deleted message kept its location")
		}
	})
}

// TestIdempotentSend: a send that repeats a clientMessageId returns the
// stored message, writes nothing and publishes nothing, also when the
// copies race; the id is per author; its limit is 128 bytes.
func TestIdempotentSend(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		sub := srv.Dial(t, "bob").Subscribe(messageAddedSub, map[string]any{"c": ch, "after": -1})

		first := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "once", "clientMessageId": "c-1"})
		again := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "retry", "clientMessageId": "c-1"})
		if again.ID != first.ID || again.Index != first.Index || again.Body != "once" || *again.ClientMessageID != "c-1" {
			t.Errorf("retry returned %+v, want %+v", again, first)
		}
		other := mustSendInput(t, bob, map[string]any{"channelId": ch, "body": "mine", "clientMessageId": "c-1"})
		if other.ID == first.ID || other.Index != first.Index+1 {
			t.Errorf("another author's same id gave %+v", other)
		}
		for _, want := range []int{first.Index, other.Index} {
			if ev := nextAdded(t, sub); ev.MessageAdded.Index != want {
				t.Fatalf("event for index %d, want %d", ev.MessageAdded.Index, want)
			}
		}

		// Racing copies: one message.
		const n = 8
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				var out struct{ SendMessage struct{ ID string } }
				r := alice.Post(`mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "race", clientMessageId: "c-race"}) { id } }`, map[string]any{"c": ch})
				if len(r.Errors) > 0 {
					t.Errorf("racing send: %+v", r.Errors)
					return
				}
				if err := json.Unmarshal(r.Data, &out); err != nil {
					t.Error(err)
				}
				ids[i] = out.SendMessage.ID
			})
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("racing sends with one clientMessageId made messages %q", ids)
			}
		}
		if got := lastIndex(t, alice, ch); got != other.Index+1 {
			t.Errorf("lastMessageIndex %d after the race, want %d", got, other.Index+1)
		}
		if ev := nextAdded(t, sub); ev.MessageAdded.ID != ids[0] {
			t.Fatalf("event %+v, want the raced message", ev)
		}
		sub.NoEvent(t, quiet)

		mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "x", "clientMessageId": strings.Repeat("k", 128)})
		for _, id := range []string{"", strings.Repeat("k", 129)} {
			if r := sendInput(alice, map[string]any{"channelId": ch, "body": "x", "clientMessageId": id}); r.Code() != "BAD_USER_INPUT" {
				t.Errorf("clientMessageId of %d bytes: %+v", len(id), r.Errors)
			}
		}
	})
}

// TestIdempotentSendQuotedID repeats a send whose client message id holds
// the characters that quoting must carry: PostgreSQL looks repeats up with
// the ids inside one JSON parameter.
func TestIdempotentSendQuotedID(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})
		id := `q"\ü 🙂,'}`
		first := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "once", "clientMessageId": id})
		again := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "retry", "clientMessageId": id})
		if again.ID != first.ID || again.Body != "once" || *again.ClientMessageID != id {
			t.Errorf("retry returned %+v, want %+v", again, first)
		}
	})
}

// TestMentions: at most 25 joined members; anyone else, or one more, is
// BAD_USER_INPUT and writes nothing; Message.mentions and
// Channel.unreadMentionsCount follow, and a deleted message's mentions stop
// counting.
func TestMentions(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		var members []string
		for i := range 25 {
			members = append(members, fmt.Sprintf("m%02d", i))
		}
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": append([]string{"bob", "invitee-later"}, members...)})
		callOK(t, alice, `mutation($c: ID!) { inviteMember(channelId: $c, identity: "carol") { id } }`, map[string]any{"c": ch}, nil)

		all := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "all", "mentions": members})
		if len(all.Mentions) != 25 {
			t.Errorf("25 mentions came back as %d", len(all.Mentions))
		}
		last := lastIndex(t, alice, ch)
		for name, mentions := range map[string][]string{
			"26":        append([]string{"bob"}, members...),
			"outsider":  {"bob", "dave"},
			"invitee":   {"carol"},
			"empty one": {""},
		} {
			if r := sendInput(alice, map[string]any{"channelId": ch, "body": "x", "mentions": mentions}); r.Code() != "BAD_USER_INPUT" {
				t.Errorf("%s: want BAD_USER_INPUT, got %s %+v", name, r.Data, r.Errors)
			}
		}
		if got := lastIndex(t, alice, ch); got != last {
			t.Errorf("refused sends moved lastMessageIndex from %d to %d", last, got)
		}

		hey := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "hey bob", "mentions": []string{"bob", "bob"}})
		if len(hey.Mentions) != 1 || hey.Mentions[0].Identity != "bob" {
			t.Errorf("mentions %+v", hey.Mentions)
		}
		mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "hey again", "mentions": []string{"bob"}})
		counts := func() (int, int) {
			var out struct {
				Channel struct{ UnreadCount, UnreadMentionsCount int }
			}
			callOK(t, bob, `query($c: ID!) { channel(id: $c) { unreadCount unreadMentionsCount } }`, map[string]any{"c": ch}, &out)
			return out.Channel.UnreadCount, out.Channel.UnreadMentionsCount
		}
		if u, m := counts(); u != 3 || m != 2 {
			t.Errorf("bob's unread %d, mentions %d; want 3 and 2", u, m)
		}
		callOK(t, alice, `mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": hey.ID}, nil)
		if u, m := counts(); u != 2 || m != 1 {
			t.Errorf("after a deletion bob's unread %d, mentions %d; want 2 and 1", u, m)
		}
		callOK(t, bob, `mutation($c: ID!, $i: Int!) { markRead(channelId: $c, index: $i) { id } }`, map[string]any{"c": ch, "i": lastIndex(t, bob, ch)}, nil)
		if u, m := counts(); u != 0 || m != 0 {
			t.Errorf("after markRead bob's unread %d, mentions %d", u, m)
		}
		// A page of messages loads mentions in one batch.
		var page struct {
			Messages struct {
				Edges []struct {
					Node struct{ Mentions []struct{ Identity string } }
				}
			}
		}
		callOK(t, alice, `query($c: ID!) { messages(channelId: $c, last: 10) { edges { node { mentions { identity } } } } }`, map[string]any{"c": ch}, &page)
		if n := len(page.Messages.Edges); n != 3 || len(page.Messages.Edges[0].Node.Mentions) != 25 || len(page.Messages.Edges[2].Node.Mentions) != 1 {
			t.Errorf("page of %d messages: %+v", n, page)
		}
	})
}

// TestMentionsConcurrentSends: concurrent sends, which share send batches,
// each get the mentions they name, looked up per channel (bob is a member
// of both channels, carol of one); a send naming someone who is not a
// member is BAD_USER_INPUT and writes nothing, without failing the others;
// an identity with the characters that quoting must carry resolves
// (PostgreSQL looks a batch's mentions up, and inserts them, inside one
// JSON parameter).
func TestMentionsConcurrentSends(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		quoted := `q"\ü 🙂,'}`
		one := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob", "carol", quoted}})
		two := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		type send struct {
			ch       string
			mentions []string
			ok       bool
		}
		var sends []send
		for range 3 {
			sends = append(sends,
				send{one, []string{"bob", "carol"}, true},
				send{one, []string{quoted, "carol"}, true},
				send{two, []string{"bob"}, true},
				send{two, []string{"bob", "carol"}, false}, // carol is not in two
				send{one, []string{"bob", "dave"}, false},  // nor is dave in one
			)
		}
		before := map[string]int{one: lastIndex(t, alice, one), two: lastIndex(t, alice, two)}
		got := make([]*parleytest.Response, len(sends))
		var wg sync.WaitGroup
		for i, s := range sends {
			wg.Go(func() {
				got[i] = sendInput(alice, map[string]any{"channelId": s.ch, "body": "hi", "mentions": s.mentions})
			})
		}
		wg.Wait()
		written := map[string]int{}
		for i, s := range sends {
			r := got[i]
			if !s.ok {
				if r.Code() != "BAD_USER_INPUT" {
					t.Errorf("send %d mentioning %q: want BAD_USER_INPUT, got %s %+v", i, s.mentions, r.Data, r.Errors)
				}
				continue
			}
			var out struct{ SendMessage sentMessage }
			if len(r.Errors) > 0 {
				t.Fatalf("send %d mentioning %q: %+v", i, s.mentions, r.Errors)
			}
			if err := json.Unmarshal(r.Data, &out); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range out.SendMessage.Mentions {
				names = append(names, m.Identity)
			}
			if !slices.Equal(names, s.mentions) {
				t.Errorf("send %d mentions %q, want %q", i, names, s.mentions)
			}
			written[s.ch]++
		}
		for _, ch := range []string{one, two} {
			if got, want := lastIndex(t, alice, ch), before[ch]+written[ch]; got != want {
				t.Errorf("lastMessageIndex %d, want %d: refused sends wrote", got, want)
			}
		}
		var out struct {
			Channel struct{ UnreadMentionsCount int }
		}
		callOK(t, bob, `query($c: ID!) { channel(id: $c) { unreadMentionsCount } }`, map[string]any{"c": one}, &out)
		if out.Channel.UnreadMentionsCount != 3 {
			t.Errorf("bob's unread mentions in one: %d, want 3", out.Channel.UnreadMentionsCount)
		}
	})
}

// TestUnreadState: unreadCount skips deleted messages, system messages and
// the caller's own; unreadSummary totals the caller's channels;
// setReadHorizon moves back and clears, within the channel's indexes;
// markAllRead reads everything and counts the channels it changed.
func TestUnreadState(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{SystemMessages: true})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		one := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC"})
		two := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})               // nothing unread
		callOK(t, bob, `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": one}, nil) // a system message
		a1 := mustSend(t, alice, one, "a1")
		mustSend(t, alice, one, "a2")
		mustSend(t, bob, one, "b1") // bob's own, read by sending
		a3 := mustSend(t, alice, one, "a3")
		callOK(t, alice, `mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": a3.ID}, nil)
		mustSendInput(t, alice, map[string]any{"channelId": two, "body": "@bob", "mentions": []string{"bob"}})

		unread := func(ch string) int {
			var out struct{ Channel struct{ UnreadCount int } }
			callOK(t, bob, `query($c: ID!) { channel(id: $c) { unreadCount } }`, map[string]any{"c": ch}, &out)
			return out.Channel.UnreadCount
		}
		summary := func() [3]int { return unreadSummaryOf(t, bob) }
		// Sending b1 read a1 and a2; a3 is deleted: nothing unread in one.
		if got := unread(one); got != 0 {
			t.Errorf("unread in one %d, want 0", got)
		}
		if got := summary(); got != [3]int{1, 1, 1} {
			t.Errorf("summary %v, want 1 channel, 1 message, 1 mention", got)
		}

		horizon := func(ch string, index any) *int {
			var out struct{ SetReadHorizon struct{ LastReadIndex *int } }
			callOK(t, bob, `mutation($c: ID!, $i: Int) { setReadHorizon(channelId: $c, index: $i) { lastReadIndex } }`, map[string]any{"c": ch, "i": index}, &out)
			return out.SetReadHorizon.LastReadIndex
		}
		if got := horizon(one, a1.Index-1); got == nil || *got != a1.Index-1 {
			t.Errorf("horizon moved back to %v", got)
		}
		if got := unread(one); got != 2 {
			t.Errorf("unread after moving back %d, want 2 (a1, a2)", got)
		}
		if got := horizon(one, nil); got != nil {
			t.Errorf("cleared horizon is %v", *got)
		}
		if got := unread(one); got != 2 {
			t.Errorf("unread with no horizon %d, want 2: system, own and deleted messages never count", got)
		}
		last := lastIndex(t, bob, one)
		for _, i := range []int{-1, last + 1} {
			if r := bob.Post(`mutation($c: ID!, $i: Int) { setReadHorizon(channelId: $c, index: $i) { id } }`, map[string]any{"c": one, "i": i}); r.Code() != "BAD_USER_INPUT" {
				t.Errorf("setReadHorizon(%d): %+v", i, r.Errors)
			}
		}
		horizon(one, last) // the limit

		horizon(one, nil)
		var all struct{ MarkAllRead int }
		callOK(t, bob, `mutation { markAllRead }`, nil, &all)
		if all.MarkAllRead != 2 {
			t.Errorf("markAllRead changed %d channels, want 2", all.MarkAllRead)
		}
		if got := summary(); got != [3]int{} {
			t.Errorf("summary after markAllRead %v", got)
		}
		callOK(t, bob, `mutation { markAllRead }`, nil, &all)
		if all.MarkAllRead != 0 {
			t.Errorf("markAllRead again changed %d channels", all.MarkAllRead)
		}
	})
}

const systemAddedSub = `subscription($c: ID, $after: Int) { messageAdded(channelId: $c, afterIndex: $after) {
	index type origin author { identity } body
	system { kind actor { identity } users { identity } friendlyName state } } }`

// systemData is a message of systemAddedSub.
type systemData struct {
	Index  int
	Type   string
	Origin string
	Author *struct{ Identity string }
	Body   string
	System *struct {
		Kind         string
		Actor        *struct{ Identity string }
		Users        []struct{ Identity string }
		FriendlyName *string
		State        *string
	}
}

// summary is the message as "KIND actor users friendlyName state".
func (m systemData) summary() string {
	if m.System == nil {
		return "not a system message: " + m.Body
	}
	s := m.System.Kind
	if m.System.Actor != nil {
		s += " " + m.System.Actor.Identity
	}
	var users []string
	for _, u := range m.System.Users {
		users = append(users, u.Identity)
	}
	s += " [" + strings.Join(users, ",") + "]"
	if m.System.FriendlyName != nil {
		s += " " + *m.System.FriendlyName
	}
	if m.System.State != nil {
		s += " " + *m.System.State
	}
	return s
}

// TestSystemMessages: every change to a channel that has one writes a
// system message with the next index, which arrives through messageAdded
// on both WebSocket protocols, has no author, is never unread and pushes
// nothing; setting a value it already has writes none. Without
// PARLEY_SYSTEM_MESSAGES the same changes write none.
func TestSystemMessages(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{SystemMessages: true})
		alice, bob, dave := srv.Client("alice"), srv.Client("bob"), srv.Client("dave")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "friendlyName": "General", "members": []string{"bob"}})
		vars := map[string]any{"c": ch}
		subs := []*parleytest.WSSub{
			srv.Dial(t, "bob").Subscribe(systemAddedSub, map[string]any{"c": ch, "after": -1}),
			srv.Dial(t, "bob", parleytest.WithLegacyProtocol()).Subscribe(systemAddedSub, map[string]any{"c": ch, "after": -1}),
		}
		steps := []struct {
			c     *parleytest.Client
			query string
			want  string
		}{
			{alice, `mutation($c: ID!) { addMember(channelId: $c, identity: "carol") { id } }`, "MEMBER_ADDED alice [carol]"},
			{alice, `mutation($c: ID!) { addMembers(channelId: $c, members: [{identity: "erin"}, {identity: "frank"}]) { id } }`, "MEMBER_ADDED alice [erin,frank]"},
			{alice, `mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "Lobby"}) { id } }`, "FRIENDLY_NAME_CHANGED alice [] Lobby"},
			{alice, `mutation($c: ID!) { updateChannel(id: $c, input: {photoUrl: "https://example.com/p.png"}) { id } }`, "PHOTO_CHANGED alice []"},
			{alice, `mutation($c: ID!) { setChannelState(id: $c, state: INACTIVE) { id } }`, "STATE_CHANGED alice [] INACTIVE"},
			{alice, `mutation($c: ID!) { inviteMember(channelId: $c, identity: "gina") { id } }`, "MEMBER_INVITED alice [gina]"},
			{srv.Client("gina"), `mutation($c: ID!) { acceptInvite(channelId: $c) { id } }`, "MEMBER_JOINED gina [gina]"},
			{dave, `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, "MEMBER_JOINED dave [dave]"},
			{alice, `mutation($c: ID!) { removeMember(channelId: $c, identity: "carol") }`, "MEMBER_REMOVED alice [carol]"},
			{dave, `mutation($c: ID!) { leaveChannel(channelId: $c) }`, "MEMBER_LEFT dave [dave]"},
		}
		for i, step := range steps {
			callOK(t, step.c, step.query, vars, nil)
			for _, sub := range subs {
				var ev struct{ MessageAdded systemData }
				if err := json.Unmarshal(sub.Next(t, eventWait), &ev); err != nil {
					t.Fatal(err)
				}
				m := ev.MessageAdded
				if got := m.summary(); got != step.want || m.Index != i || m.Type != "SYSTEM" || m.Origin != "SYSTEM" || m.Author != nil {
					t.Errorf("step %d: message %d %s %s author %v %q, want %d %q", i, m.Index, m.Type, m.Origin, m.Author, got, i, step.want)
				}
			}
		}
		// No change, no message.
		callOK(t, alice, `mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "Lobby"}) { id } }`, vars, nil)
		callOK(t, alice, `mutation($c: ID!) { setChannelState(id: $c, state: INACTIVE) { id } }`, vars, nil)
		callOK(t, bob, `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, vars, nil)
		for _, sub := range subs {
			sub.NoEvent(t, quiet)
		}
		var out struct {
			Channel struct {
				UnreadCount      int
				LastMessageIndex int
				State            string
				LastMessage      struct{ Type string }
			}
			Messages struct {
				Edges []struct{ Node struct{ Read, Mine bool } }
			}
		}
		callOK(t, bob, `query($c: ID!) { channel(id: $c) { unreadCount lastMessageIndex state lastMessage { type } }
			messages(channelId: $c) { edges { node { read mine } } } }`, vars, &out)
		if out.Channel.UnreadCount != 0 || out.Channel.LastMessageIndex != len(steps)-1 || out.Channel.State != "INACTIVE" || out.Channel.LastMessage.Type != "SYSTEM" {
			t.Errorf("channel after system messages: %+v", out.Channel)
		}
		for _, e := range out.Messages.Edges {
			if !e.Node.Read || e.Node.Mine {
				t.Errorf("a system message is read %v, mine %v", e.Node.Read, e.Node.Mine)
			}
		}
		// The next message takes the next index and makes the channel ACTIVE.
		if m := mustSend(t, alice, ch, "hi"); m.Index != len(steps) {
			t.Errorf("message after system messages has index %d, want %d", m.Index, len(steps))
		}

		off := parleytest.NewServer(t, b, parleytest.Options{})
		quietCh := mustCreateChannel(t, off.Client("alice"), map[string]any{"type": "PUBLIC"})
		callOK(t, off.Client("alice"), `mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "x"}) { id } }`, map[string]any{"c": quietCh}, nil)
		callOK(t, off.Client("bob"), `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": quietCh}, nil)
		if got := lastIndex(t, off.Client("alice"), quietCh); got != -1 {
			t.Errorf("without system messages the channel has lastMessageIndex %d", got)
		}
	})
}

// TestEditMessageAndFields: editMessage takes a body or attributes or a
// merge patch (not both forms), records updatedBy; message(id) is for
// those who may see it; member is the author's membership until they
// leave; mine and read are the caller's.
func TestEditMessageAndFields(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob, dave := srv.Client("alice"), srv.Client("bob"), srv.Client("dave")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		var sent struct{ SendMessage struct{ ID string } }
		callOK(t, alice, `mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "v1", attributes: {a: 1, b: 2}}) { id } }`, map[string]any{"c": ch}, &sent)
		id := sent.SendMessage.ID
		const edit = `mutation($id: ID!, $b: String, $a: JSON, $p: JSON) { editMessage(id: $id, body: $b, attributes: $a, attributesPatch: $p) {
			body attributes updatedBy { identity } editedAt } }`
		type edited struct {
			EditMessage struct {
				Body       string
				Attributes json.RawMessage
				UpdatedBy  *struct{ Identity string }
				EditedAt   *string
			}
		}
		var e edited
		callOK(t, alice, edit, map[string]any{"id": id, "p": map[string]any{"b": nil, "c": 3}}, &e)
		if e.EditMessage.Body != "v1" || string(e.EditMessage.Attributes) != `{"a":1,"c":3}` || e.EditMessage.UpdatedBy == nil ||
			e.EditMessage.UpdatedBy.Identity != "alice" || e.EditMessage.EditedAt == nil {
			t.Errorf("patched: %+v %s", e.EditMessage, e.EditMessage.Attributes)
		}
		callOK(t, alice, edit, map[string]any{"id": id, "b": "v2"}, &e)
		if e.EditMessage.Body != "v2" || string(e.EditMessage.Attributes) != `{"a":1,"c":3}` {
			t.Errorf("body only: %+v", e.EditMessage)
		}
		for name, vars := range map[string]map[string]any{
			"nothing":    {"id": id},
			"both forms": {"id": id, "a": map[string]any{}, "p": map[string]any{"x": 1}},
			"blank body": {"id": id, "b": " "},
			"big patch":  {"id": id, "p": map[string]any{"x": strings.Repeat("y", 16<<10)}},
		} {
			if r := alice.Post(edit, vars); r.Code() != "BAD_USER_INPUT" {
				t.Errorf("%s: %s %+v", name, r.Data, r.Errors)
			}
		}

		const one = `query($id: ID!) { message(id: $id) { id body mine read member { user { identity } } } }`
		type got struct {
			Message *struct {
				ID, Body   string
				Mine, Read bool
				Member     *struct{ User struct{ Identity string } }
			}
		}
		var a, bb, d got
		callOK(t, alice, one, map[string]any{"id": id}, &a)
		callOK(t, bob, one, map[string]any{"id": id}, &bb)
		callOK(t, dave, one, map[string]any{"id": id}, &d)
		if a.Message == nil || !a.Message.Mine || !a.Message.Read || a.Message.Member == nil || a.Message.Member.User.Identity != "alice" {
			t.Errorf("alice's view %+v", a.Message)
		}
		if bb.Message == nil || bb.Message.Mine || bb.Message.Read {
			t.Errorf("bob's view %+v", bb.Message)
		}
		if d.Message != nil {
			t.Errorf("an outsider sees the message: %+v", d.Message)
		}
		var missing got
		callOK(t, alice, one, map[string]any{"id": "no-such-message"}, &missing)
		if missing.Message != nil {
			t.Errorf("an unknown id gave %+v", missing.Message)
		}
		callOK(t, bob, `mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, map[string]any{"c": ch}, nil)
		callOK(t, bob, one, map[string]any{"id": id}, &bb)
		if !bb.Message.Read {
			t.Errorf("bob read the message but it is unread")
		}
		callOK(t, alice, `mutation($c: ID!) { leaveChannel(channelId: $c) }`, map[string]any{"c": ch}, nil)
		callOK(t, bob, one, map[string]any{"id": id}, &bb)
		if bb.Message.Member != nil {
			t.Errorf("the author left but the message's member is %+v", bb.Message.Member)
		}
	})
}

// filteredMessagesQuery is messages with a filter and every pagination
// argument as variables.
const filteredMessagesQuery = `query($c: ID!, $f: MessageFilter, $first: Int, $after: String, $last: Int, $before: String) {
	messages(channelId: $c, filter: $f, first: $first, after: $after, last: $last, before: $before) {
		edges { node { index } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`

// filteredPage is c's page of channel ch's messages for vars (f, first,
// after, last, before), failing t on an error.
func filteredPage(t *testing.T, c *parleytest.Client, ch string, vars map[string]any) messagesData {
	t.Helper()
	vars["c"] = ch
	var out messagesData
	callOK(t, c, filteredMessagesQuery, vars, &out)
	return out
}

// TestMessageFilter: each filter field, alone and combined, with forward
// and backward pages whose hasNextPage and hasPreviousPage account for the
// filter.
func TestMessageFilter(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		// 0 a, 1 b, 2 a loc, 3 a @bob, 4 b, 5 a loc @bob, 6 a, 7 b
		for i, in := range []map[string]any{
			{"body": "0"}, {"body": "1", "by": "bob"}, {"location": map[string]any{"latitude": 1, "longitude": 1}},
			{"body": "3", "mentions": []string{"bob"}}, {"body": "4", "by": "bob"},
			{"location": map[string]any{"latitude": 1, "longitude": 1}, "mentions": []string{"bob"}}, {"body": "6"}, {"body": "7", "by": "bob"},
		} {
			c := alice
			if in["by"] == "bob" {
				c = bob
			}
			delete(in, "by")
			in["channelId"] = ch
			if m := mustSendInput(t, c, in); m.Index != i {
				t.Fatalf("message %d got index %d", i, m.Index)
			}
		}
		page := func(c *parleytest.Client, vars map[string]any) messagesData { return filteredPage(t, c, ch, vars) }
		for name, tc := range map[string]struct {
			c    *parleytest.Client
			f    map[string]any
			want []int
		}{
			"types":           {alice, map[string]any{"types": []string{"LOCATION"}}, []int{2, 5}},
			"authors":         {alice, map[string]any{"authors": []string{"bob"}}, []int{1, 4, 7}},
			"range":           {alice, map[string]any{"fromIndex": 2, "toIndex": 4}, []int{2, 3, 4}},
			"hasMedia false":  {alice, map[string]any{"hasMedia": false, "toIndex": 2}, []int{0, 1, 2}},
			"hasMedia true":   {alice, map[string]any{"hasMedia": true}, []int{}},
			"mentionsMe":      {bob, map[string]any{"mentionsMe": true}, []int{3, 5}},
			"not mentionsMe":  {bob, map[string]any{"mentionsMe": false, "authors": []string{"alice"}}, []int{0, 2, 6}},
			"combined":        {bob, map[string]any{"mentionsMe": true, "types": []string{"TEXT"}, "fromIndex": 1}, []int{3}},
			"empty filter":    {alice, map[string]any{}, []int{0, 1, 2, 3, 4, 5, 6, 7}},
			"unknown authors": {alice, map[string]any{"authors": []string{"nobody"}}, []int{}},
		} {
			if got := page(tc.c, map[string]any{"f": tc.f}).indexes(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%s: %v, want %v", name, got, tc.want)
			}
		}

		alices := map[string]any{"authors": []string{"alice"}} // 0 2 3 5 6
		p := page(alice, map[string]any{"f": alices, "first": 2})
		if fmt.Sprint(p.indexes()) != "[0 2]" || !p.Messages.PageInfo.HasNextPage || p.Messages.PageInfo.HasPreviousPage {
			t.Errorf("first page %v %+v", p.indexes(), p.Messages.PageInfo)
		}
		p = page(alice, map[string]any{"f": alices, "first": 2, "after": *p.Messages.PageInfo.EndCursor})
		if fmt.Sprint(p.indexes()) != "[3 5]" || !p.Messages.PageInfo.HasNextPage || !p.Messages.PageInfo.HasPreviousPage {
			t.Errorf("second page %v %+v", p.indexes(), p.Messages.PageInfo)
		}
		p = page(alice, map[string]any{"f": alices, "first": 2, "after": *p.Messages.PageInfo.EndCursor})
		if fmt.Sprint(p.indexes()) != "[6]" || p.Messages.PageInfo.HasNextPage || !p.Messages.PageInfo.HasPreviousPage {
			t.Errorf("third page %v %+v", p.indexes(), p.Messages.PageInfo)
		}
		p = page(alice, map[string]any{"f": alices, "last": 2})
		if fmt.Sprint(p.indexes()) != "[5 6]" || p.Messages.PageInfo.HasNextPage || !p.Messages.PageInfo.HasPreviousPage {
			t.Errorf("latest page %v %+v", p.indexes(), p.Messages.PageInfo)
		}
		p = page(alice, map[string]any{"f": alices, "last": 3, "before": *p.Messages.PageInfo.StartCursor})
		if fmt.Sprint(p.indexes()) != "[0 2 3]" || !p.Messages.PageInfo.HasNextPage || p.Messages.PageInfo.HasPreviousPage {
			t.Errorf("page before %v %+v", p.indexes(), p.Messages.PageInfo)
		}

		many := make([]string, 101)
		for i := range many {
			many[i] = fmt.Sprint("u", i)
		}
		if r := alice.Post(filteredMessagesQuery, map[string]any{"c": ch, "f": map[string]any{"authors": many}}); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("101 authors: %+v", r.Errors)
		}
		page(alice, map[string]any{"f": map[string]any{"authors": many[:100]}})
	})
}

// TestMessageFilterMentionsMePages: mentionsMe true, alone and combined
// with the other fields, paged forward (first/after) and backward
// (last/before) two at a time from the ends and from cursors of messages
// the filter drops, with hasNextPage and hasPreviousPage right on every
// page; others' mentions never show, nor mentions before the caller's
// history start.
func TestMessageFilterMentionsMePages(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob, carol := srv.Client("alice"), srv.Client("bob"), srv.Client("carol")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob", "carol"}})
		// Message i is by carol when i%3 == 2, else by alice; a location
		// when i%4 == 0; mentions bob when mentioned[i]; mentions carol
		// (by alice) when i%5 == 1.
		type msg struct {
			author    string
			location  bool
			mentioned bool
		}
		mentioned := map[int]bool{1: true, 2: true, 4: true, 5: true, 8: true, 9: true, 10: true, 13: true, 16: true}
		var msgs []msg
		for i := range 18 {
			m := msg{author: "alice", location: i%4 == 0, mentioned: mentioned[i]}
			c := alice
			if i%3 == 2 {
				m.author, c = "carol", carol
			}
			in := map[string]any{"channelId": ch, "body": fmt.Sprint(i)}
			if m.location {
				in["location"] = map[string]any{"latitude": 1, "longitude": 2}
			}
			var at []string
			if m.mentioned {
				at = append(at, "bob")
			}
			if i%5 == 1 && m.author == "alice" {
				at = append(at, "carol")
			}
			if len(at) > 0 {
				in["mentions"] = at
			}
			if got := mustSendInput(t, c, in); got.Index != i {
				t.Fatalf("message %d got index %d", i, got.Index)
			}
			msgs = append(msgs, m)
		}
		page := func(c *parleytest.Client, vars map[string]any) messagesData { return filteredPage(t, c, ch, vars) }
		var all messagesData
		callOK(t, alice, `query($c: ID!) { messages(channelId: $c, first: 100) { edges { cursor node { index } } } }`, map[string]any{"c": ch}, &all)
		cursorOf := func(i int) string { return all.Messages.Edges[i].Cursor }

		for name, tc := range map[string]struct {
			f    map[string]any
			keep func(i int, m msg) bool
		}{
			"alone":    {map[string]any{}, func(int, msg) bool { return true }},
			"authors":  {map[string]any{"authors": []string{"alice"}}, func(_ int, m msg) bool { return m.author == "alice" }},
			"types":    {map[string]any{"types": []string{"TEXT"}}, func(_ int, m msg) bool { return !m.location }},
			"hasMedia": {map[string]any{"hasMedia": false}, func(int, msg) bool { return true }},
			"range":    {map[string]any{"fromIndex": 2, "toIndex": 13}, func(i int, _ msg) bool { return i >= 2 && i <= 13 }},
			"all": {map[string]any{"authors": []string{"alice", "carol"}, "types": []string{"TEXT"}, "fromIndex": 3, "toIndex": 16},
				func(i int, m msg) bool { return !m.location && i >= 3 && i <= 16 }},
		} {
			tc.f["mentionsMe"] = true
			var want []int
			for i, m := range msgs {
				if m.mentioned && tc.keep(i, m) {
					want = append(want, i)
				}
			}
			// keptBelow counts the kept indexes below i.
			keptBelow := func(i int) int {
				n := 0
				for _, w := range want {
					if w < i {
						n++
					}
				}
				return n
			}
			// Forward from the start and from each message's cursor.
			for from := -1; from < len(msgs); from++ {
				vars := map[string]any{"f": tc.f, "first": 2}
				k := 0
				if from >= 0 {
					vars["after"] = cursorOf(from)
					k = keptBelow(from + 1)
				}
				for pages := 0; ; pages++ {
					p := page(bob, vars)
					end := min(k+2, len(want))
					if got := p.indexes(); fmt.Sprint(got) != fmt.Sprint(want[k:end]) {
						t.Fatalf("%s: forward after %d, page %d: %v, want %v", name, from, pages, got, want[k:end])
					}
					pi := p.Messages.PageInfo
					if pi.HasNextPage != (end < len(want)) || pi.HasPreviousPage != (k > 0 && vars["after"] != nil) {
						t.Fatalf("%s: forward after %d, page %d %v: %+v", name, from, pages, p.indexes(), pi)
					}
					if end == len(want) || pi.EndCursor == nil {
						break
					}
					vars["after"], k = *pi.EndCursor, end
				}
			}
			// Backward from the end and from each message's cursor.
			for to := len(msgs); to >= 0; to-- {
				vars := map[string]any{"f": tc.f, "last": 2}
				j := len(want)
				if to < len(msgs) {
					vars["before"] = cursorOf(to)
					j = keptBelow(to)
				}
				for pages := 0; ; pages++ {
					p := page(bob, vars)
					start := max(j-2, 0)
					if got := p.indexes(); fmt.Sprint(got) != fmt.Sprint(want[start:j]) {
						t.Fatalf("%s: backward before %d, page %d: %v, want %v", name, to, pages, got, want[start:j])
					}
					pi := p.Messages.PageInfo
					if pi.HasPreviousPage != (start > 0) || pi.HasNextPage != (j < len(want) && vars["before"] != nil) {
						t.Fatalf("%s: backward before %d, page %d %v: %+v", name, to, pages, p.indexes(), pi)
					}
					if start == 0 || pi.StartCursor == nil {
						break
					}
					vars["before"], j = *pi.StartCursor, start
				}
			}
		}

		// Carol's mentions are hers: she sees them, bob's never.
		if got := page(carol, map[string]any{"f": map[string]any{"mentionsMe": true}, "last": 10}).indexes(); fmt.Sprint(got) != "[1 6 16]" {
			t.Errorf("carol's mentions %v, want [1 6 16]", got)
		}
		// bob removed and added back with the history from now on: his
		// earlier mentions are outside his history, the new one is in it.
		callOK(t, alice, `mutation($c: ID!) { removeMember(channelId: $c, identity: "bob") }`, map[string]any{"c": ch}, nil)
		callOK(t, alice, addMembers, map[string]any{"c": ch, "m": []map[string]any{{"identity": "bob", "shareHistoryFrom": time.Now()}}}, nil)
		late := mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "again", "mentions": []string{"bob"}})
		for _, tc := range []struct {
			vars map[string]any
			want []int
		}{
			{map[string]any{"last": 5}, []int{late.Index}},
			{map[string]any{"first": 5}, []int{late.Index}},
			{map[string]any{"first": 5, "after": cursorOf(3)}, []int{late.Index}},
			{map[string]any{"last": 5, "before": cursorOf(17)}, []int{}},
		} {
			tc.vars["f"] = map[string]any{"mentionsMe": true}
			p := page(bob, tc.vars)
			if fmt.Sprint(p.indexes()) != fmt.Sprint(tc.want) || p.Messages.PageInfo.HasPreviousPage {
				t.Errorf("bob back with a later history, %v: %v %+v, want %v and no previous page", tc.vars, p.indexes(), p.Messages.PageInfo, tc.want)
			}
		}
	})
}

// TestDeletedUsersMentions: deleting a user (admin API) removes their
// messages' mentions, so the counts of those they mentioned drop.
func TestDeletedUsersMentions(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, bob, map[string]any{"type": "PRIVATE", "members": []string{"alice"}})
		mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "@bob", "mentions": []string{"bob"}})
		counts := func() [2]int {
			var out struct {
				UnreadSummary struct{ Messages, Mentions int }
			}
			callOK(t, bob, `{ unreadSummary { messages mentions } }`, nil, &out)
			return [2]int{out.UnreadSummary.Messages, out.UnreadSummary.Mentions}
		}
		if got := counts(); got != [2]int{1, 1} {
			t.Fatalf("bob's unread %v, want 1 message, 1 mention", got)
		}
		callOK(t, srv.AdminClient("ops"), `mutation { deleteUser(identity: "alice") }`, nil, nil)
		if got := counts(); got != [2]int{} {
			t.Errorf("after alice was deleted bob's unread is %v", got)
		}
	})
}

// TestUnreadSummaryGrants: a token limited to some channels sums those
// channels only, messages and mentions alike.
func TestUnreadSummaryGrants(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		srv.Client("bob").Do(`{ me { id } }`, nil, nil)
		granted := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		other := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		for _, ch := range []string{granted, other} {
			mustSend(t, alice, ch, "hello")
			mustSendInput(t, alice, map[string]any{"channelId": ch, "body": "@bob", "mentions": []string{"bob"}})
		}
		if got := unreadSummaryOf(t, srv.Client("bob")); got != [3]int{2, 4, 2} {
			t.Errorf("summary %v, want 2 channels, 4 messages, 2 mentions", got)
		}
		limited := srv.ClientWithToken(srv.TokenWith("bob", map[string]auth.Access{granted: auth.Read}, time.Hour))
		if got := unreadSummaryOf(t, limited); got != [3]int{1, 2, 1} {
			t.Errorf("summary with a token granting one channel %v, want 1 channel, 2 messages, 1 mention", got)
		}
	})
}

// unreadSummaryOf is c's unreadSummary as [channels, messages, mentions].
func unreadSummaryOf(t *testing.T, c *parleytest.Client) [3]int {
	t.Helper()
	var out struct {
		UnreadSummary struct{ Channels, Messages, Mentions int }
	}
	callOK(t, c, `{ unreadSummary { channels messages mentions } }`, nil, &out)
	s := out.UnreadSummary
	return [3]int{s.Channels, s.Messages, s.Mentions}
}
