package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/parleytest"
)

// TestShareHistory: a member added with shareHistoryFrom never sees a
// message created before it: not in messages (nor in its page info), not
// in afterIndex replay, not as lastMessage, not in unreadCount, not by id
// (edit, delete), not in markRead, not in edit or delete events.
func TestShareHistory(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner, late := srv.Client("owner"), srv.Client("late")
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE"})
		var sent []messageData
		for i := range 3 {
			sent = append(sent, mustSend(t, owner, ch, fmt.Sprintf("m%d", i)))
		}
		var created struct {
			Messages struct {
				Edges []struct{ Node struct{ CreatedAt time.Time } }
			}
		}
		owner.Do(`query($c: ID!) { messages(channelId: $c) { edges { node { createdAt } } } }`, map[string]any{"c": ch}, &created)
		boundary := created.Messages.Edges[2].Node.CreatedAt // m0 and m1 are before it
		var added struct {
			AddMembers []struct{ ShareHistoryFrom time.Time }
		}
		owner.Do(addMembers, map[string]any{"c": ch, "m": []map[string]any{{"identity": "late", "role": "ADMIN", "shareHistoryFrom": boundary}}}, &added)
		if !added.AddMembers[0].ShareHistoryFrom.Equal(boundary) {
			t.Fatalf("shareHistoryFrom = %v, want %v", added.AddMembers[0].ShareHistoryFrom, boundary)
		}
		vars := map[string]any{"c": ch}
		edits := srv.Dial(t, "late").Subscribe(`subscription($c: ID!) { messageUpdated(channelId: $c) { index } }`, vars)
		removals := srv.Dial(t, "late").Subscribe(`subscription($c: ID!) { messageRemoved(channelId: $c) { index } }`, vars)
		ready(t, edits, removals)
		sent = append(sent, mustSend(t, owner, ch, "m3"))

		// messages, and its page info.
		var hist messagesData
		late.Do(messagesQuery, vars, &hist)
		if got := hist.indexes(); fmt.Sprint(got) != "[2 3]" || hist.Messages.PageInfo.HasPreviousPage {
			t.Fatalf("messages = %v %+v, want [2 3] and no previous page", got, hist.Messages.PageInfo)
		}
		late.Do(messagesQuery, map[string]any{"c": ch, "last": 5, "before": *hist.Messages.PageInfo.StartCursor}, &hist)
		if len(hist.Messages.Edges) != 0 || hist.Messages.PageInfo.HasPreviousPage {
			t.Fatalf("before the first visible message: %v %+v", hist.indexes(), hist.Messages.PageInfo)
		}
		late.Do(messagesQuery, map[string]any{"c": ch, "first": 1}, &hist)
		if got := hist.indexes(); fmt.Sprint(got) != "[2]" || hist.Messages.PageInfo.HasPreviousPage || !hist.Messages.PageInfo.HasNextPage {
			t.Fatalf("first page = %v %+v", got, hist.Messages.PageInfo)
		}

		// afterIndex replay, from before the boundary and from the start.
		ws := srv.Dial(t, "late")
		for _, after := range []int{-1, 0} {
			sub := ws.Subscribe(messageAddedSub, map[string]any{"c": ch, "after": after})
			for _, want := range []int{2, 3} {
				if ev := nextAdded(t, sub); ev.MessageAdded.Index != want {
					t.Fatalf("replay after %d: index %d, want %d", after, ev.MessageAdded.Index, want)
				}
			}
			sub.NoEvent(t, quiet)
			sub.Stop()
		}

		// unreadCount and lastMessage.
		var c struct {
			Channel struct {
				UnreadCount int
				LastMessage *struct{ Index int }
			}
		}
		late.Do(`query($c: ID!) { channel(id: $c) { unreadCount lastMessage { index } } }`, vars, &c)
		if c.Channel.UnreadCount != 2 || c.Channel.LastMessage == nil || c.Channel.LastMessage.Index != 3 {
			t.Fatalf("channel for the late member = %+v", c.Channel)
		}

		// By id: edit, delete; markRead of a hidden index.
		late.Fails("NOT_FOUND", `mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": sent[0].ID})
		late.Fails("NOT_FOUND", `mutation($id: ID!) { editMessage(id: $id, body: "x") { id } }`, map[string]any{"id": sent[1].ID})
		late.Fails("BAD_USER_INPUT", `mutation($c: ID!) { markRead(channelId: $c, index: 1) { id } }`, vars)
		late.Do(`mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": sent[2].ID}, nil)

		// Edit and delete events of hidden messages are left out.
		owner.Do(`mutation($id: ID!) { editMessage(id: $id, body: "edited") { id } }`, map[string]any{"id": sent[0].ID}, nil)
		owner.Do(`mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": sent[1].ID}, nil)
		owner.Do(`mutation($id: ID!) { editMessage(id: $id, body: "edited") { id } }`, map[string]any{"id": sent[3].ID}, nil)
		var idx struct {
			MessageUpdated struct{ Index int }
			MessageRemoved struct{ Index int }
		}
		mustJSON(t, edits.Next(t, eventWait), &idx)
		mustJSON(t, removals.Next(t, eventWait), &idx)
		if idx.MessageUpdated.Index != 3 || idx.MessageRemoved.Index != 2 {
			t.Fatalf("events for the late member: %+v, want the edit of 3 and the deletion of 2", idx)
		}

		// A boundary after every message (here in the future: now): the
		// last message is hidden too, and nothing is unread.
		other := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE"})
		mustSend(t, owner, other, "old")
		owner.Do(addMembers, map[string]any{"c": other, "m": []map[string]any{{"identity": "late", "shareHistoryFrom": time.Now().Add(time.Hour)}}}, nil)
		late.Do(`query($c: ID!) { channel(id: $c) { unreadCount lastMessage { index } } }`, map[string]any{"c": other}, &c)
		if c.Channel.UnreadCount != 0 || c.Channel.LastMessage != nil {
			t.Fatalf("before any shared message: %+v", c.Channel)
		}
		late.Do(messagesQuery, map[string]any{"c": other}, &hist)
		if len(hist.Messages.Edges) != 0 || hist.Messages.PageInfo.HasPreviousPage {
			t.Fatalf("messages before any shared one: %+v", hist)
		}
		var f struct {
			MyChannels struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		late.Do(`{ myChannels(filter: {hasUnread: true}) { edges { node { id } } } }`, nil, &f)
		if len(f.MyChannels.Edges) != 1 || f.MyChannels.Edges[0].Node.ID != ch {
			t.Fatalf("hasUnread channels = %+v, want only %s", f, ch)
		}
		mustSend(t, owner, other, "new")
		late.Do(`query($c: ID!) { channel(id: $c) { unreadCount lastMessage { index } } }`, map[string]any{"c": other}, &c)
		if c.Channel.UnreadCount != 1 || c.Channel.LastMessage == nil || c.Channel.LastMessage.Index != 1 {
			t.Fatalf("after a shared message: %+v", c.Channel)
		}
	})
}
