package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/deliverytest"
	"github.com/parleychat/parley/delivery/setup"
	"github.com/parleychat/parley/parleytest"
)

// hookServer starts a server posting webhooks of events (nil: all) to a
// receiver checking their signatures.
func hookServer(t *testing.T, b parleytest.Backend, events []string) (*parleytest.Server, *deliverytest.Webhooks) {
	t.Helper()
	secret := deliverytest.NewSecret(t)
	r := deliverytest.NewWebhooks(t, ca, secret)
	s := parleytest.NewServer(t, b, parleytest.Options{Delivery: &setup.Config{WebhookURL: r.URL, WebhookSecret: secret, WebhookEvents: events}})
	return s, r
}

// eventsByType waits for the queue to drain and returns the webhooks
// received, by type.
func eventsByType(t *testing.T, s *parleytest.Server, r *deliverytest.Webhooks) map[string][]deliverytest.Event {
	t.Helper()
	waitIdle(t, s)
	out := map[string][]deliverytest.Event{}
	for _, ev := range r.Events() {
		out[ev.Type] = append(out[ev.Type], ev)
	}
	return out
}

// TestWebhooks: each kind of write posts its event, signed (the receiver
// verifies with the reference library), with data in the GraphQL types'
// shapes.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, r := hookServer(t, b, nil)
		alice := s.Client("alice")
		var created struct {
			CreateChannel struct{ ID string } `json:"createChannel"`
		}
		alice.Do(`mutation { createChannel(input: {friendlyName: "General", type: PUBLIC, members: ["bob"]}) { id } }`, nil, &created)
		ch := created.CreateChannel.ID
		id := send(t, s, "alice", ch, "hello")
		alice.Do(`mutation($id: ID!) { editMessage(id: $id, body: "hello!") { id } }`, map[string]any{"id": id}, nil)
		alice.Do(`mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": id}, nil)
		alice.Do(`mutation($id: ID!) { updateChannel(id: $id, input: {friendlyName: "Main"}) { id } }`, map[string]any{"id": ch}, nil)
		s.Client("carol").Do(`mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, map[string]any{"c": ch}, nil)
		s.Client("carol").Do(`mutation($c: ID!) { markRead(channelId: $c, index: 0) { id } }`, map[string]any{"c": ch}, nil)
		s.Client("bob").Do(`mutation($c: ID!) { leaveChannel(channelId: $c) }`, map[string]any{"c": ch}, nil)
		s.Client("carol").Do(`mutation { updateMe(input: {friendlyName: "Carol"}) { id } }`, nil, nil)
		alice.Do(`mutation($id: ID!) { deleteChannel(id: $id) }`, map[string]any{"id": ch}, nil)

		got := eventsByType(t, s, r)
		for typ, n := range map[string]int{
			delivery.ChannelCreated: 1, delivery.MessageCreated: 1, delivery.MessageUpdated: 1, delivery.MessageDeleted: 1,
			delivery.ChannelUpdated: 1, delivery.MemberJoined: 3, delivery.MemberUpdated: 1, delivery.MemberLeft: 1,
			delivery.UserUpdated: 1, delivery.ChannelDeleted: 1,
		} {
			if len(got[typ]) != n {
				t.Errorf("%d %s webhooks, want %d", len(got[typ]), typ, n)
			}
		}
		var msg struct {
			Message struct {
				ID      string
				Index   int
				Body    string
				Channel struct{ ID, FriendlyName string }
				Author  struct{ Identity string }
			}
		}
		decode(t, got[delivery.MessageCreated], &msg)
		if msg.Message.ID != id || msg.Message.Body != "hello" || msg.Message.Channel.ID != ch || msg.Message.Channel.FriendlyName != "General" || msg.Message.Author.Identity != "alice" {
			t.Errorf("message.created data %+v", msg)
		}
		decode(t, got[delivery.MessageUpdated], &msg)
		if msg.Message.Body != "hello!" || msg.Message.Author.Identity != "alice" || msg.Message.Channel.ID != ch {
			t.Errorf("message.updated data %+v", msg)
		}
		var upd struct {
			Channel struct {
				ID, FriendlyName string
				CreatedBy        struct{ Identity string }
				MembersCount     int
			}
			Reasons []string
		}
		decode(t, got[delivery.ChannelUpdated], &upd)
		if upd.Channel.ID != ch || upd.Channel.FriendlyName != "Main" || upd.Channel.CreatedBy.Identity != "alice" || len(upd.Reasons) != 1 || upd.Reasons[0] != "FRIENDLY_NAME" {
			t.Errorf("channel.updated data %+v", upd)
		}
		var mem struct {
			Member struct {
				Role          string
				LastReadIndex *int
				User          struct{ Identity string }
				Channel       struct{ ID string }
			}
			Reasons []string
		}
		decode(t, got[delivery.MemberUpdated], &mem)
		if mem.Member.User.Identity != "carol" || mem.Member.LastReadIndex == nil || *mem.Member.LastReadIndex != 0 || mem.Reasons[0] != "LAST_READ" {
			t.Errorf("member.updated data %+v", mem)
		}
		decode(t, got[delivery.MemberLeft], &mem)
		if mem.Member.User.Identity != "bob" || mem.Member.Channel.ID != ch {
			t.Errorf("member.left data %+v", mem)
		}
		var user struct {
			User    struct{ Identity, FriendlyName string }
			Reasons []string
		}
		decode(t, got[delivery.UserUpdated], &user)
		if user.User.Identity != "carol" || user.User.FriendlyName != "Carol" {
			t.Errorf("user.updated data %+v", user)
		}
		seen := map[string]bool{}
		for _, evs := range got {
			for _, ev := range evs {
				if seen[ev.ID] || ev.ID == "" {
					t.Errorf("webhook-id %q repeated or empty", ev.ID)
				}
				seen[ev.ID] = true
			}
		}
	})
}

// decode unmarshals the data of the only event in evs.
func decode(t *testing.T, evs []deliverytest.Event, out any) {
	t.Helper()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
	if err := json.Unmarshal(evs[0].Data, out); err != nil {
		t.Fatalf("data %s: %v", evs[0].Data, err)
	}
}

// TestWebhookEventsFilter: only the types PARLEY_WEBHOOK_EVENTS lists are
// posted.
func TestWebhookEventsFilter(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, r := hookServer(t, b, []string{delivery.MessageCreated})
		ch := createChannel(t, s, "alice", "General", "bob")
		send(t, s, "alice", ch, "one")
		s.Client("bob").Do(`mutation($c: ID!) { leaveChannel(channelId: $c) }`, map[string]any{"c": ch}, nil)
		got := eventsByType(t, s, r)
		if len(got) != 1 || len(got[delivery.MessageCreated]) != 1 {
			t.Errorf("webhooks %v; want one message.created", got)
		}
	})
}

// TestWebhookRetries: a failing receiver gets the same webhook (same
// webhook-id) again, after its Retry-After; any 2xx ends the delivery.
func TestWebhookRetries(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, r := hookServer(t, b, []string{delivery.MessageCreated})
		r.Reply(delivery.MessageCreated, deliverytest.Reply{Status: http.StatusInternalServerError, RetryAfter: time.Second},
			deliverytest.Reply{Status: http.StatusAccepted})
		ch := createChannel(t, s, "alice", "General")
		send(t, s, "alice", ch, "one")
		first, second := r.Next(t), r.Next(t)
		if first.ID != second.ID || first.Status != http.StatusInternalServerError || second.Status != http.StatusAccepted {
			t.Errorf("attempts %+v then %+v", first, second)
		}
		if st := waitIdle(t, s); st.Sent != 1 || st.Retried != 1 {
			t.Errorf("stats %+v", st)
		}
		if n := len(r.Events()); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
	})
}

// TestPreSendHook: the hook's answers allow, reject and modify a message;
// a slow or failing hook lets it through or refuses it, as configured.
func TestPreSendHook(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		for _, closed := range []bool{false, true} {
			secret := deliverytest.NewSecret(t)
			h := deliverytest.NewPreSend(t, ca, secret)
			s := parleytest.NewServer(t, b, parleytest.Options{Delivery: &setup.Config{
				// Long enough that a loaded machine answers every prompt
				// call in time; the hook that never answers below is cut
				// off by it.
				PreSendURL: h.URL, WebhookSecret: secret, PreSendTimeout: 3 * time.Second, PreSendFailClosed: closed,
			}})
			ch := createChannel(t, s, "alice", "General")
			sendQ := `mutation($in: SendMessageInput!) { sendMessage(input: $in) { body attributes } }`
			in := func(body string) map[string]any {
				return map[string]any{"in": map[string]any{"channelId": ch, "body": body, "attributes": map[string]any{"a": 1}}}
			}
			answer := func(delay time.Duration, status int, body string) {
				h.Answer(delay, func(deliverytest.PreSendRequest) (int, string) { return status, body })
			}
			var out struct {
				SendMessage struct {
					Body       string
					Attributes map[string]any
				} `json:"sendMessage"`
			}
			answer(0, 200, `{"action":"allow"}`)
			s.Client("alice").Do(sendQ, in("first"), &out)
			call := h.Calls()[0]
			var req struct {
				Type string
				Data struct {
					Message struct {
						ID, Body string
						Channel  struct{ ID string }
					}
					Sender struct{ Identity string }
				}
			}
			if err := json.Unmarshal(call.Body, &req); err != nil || req.Type != "message.sending" || req.Data.Message.Body != "first" ||
				req.Data.Message.Channel.ID != ch || req.Data.Sender.Identity != "alice" || call.ID != req.Data.Message.ID {
				t.Errorf("pre-send request %s (%v), id %s", call.Body, err, call.ID)
			}

			answer(0, 200, `{"action":"reject","reason":"no shouting"}`)
			if msg := s.Client("alice").Fails("REJECTED", sendQ, in("HEY")); msg != "no shouting" {
				t.Errorf("reject message %q", msg)
			}
			answer(0, 200, `{"action":"modify","body":"hey","attributes":{"checked":true}}`)
			s.Client("alice").Do(sendQ, in("HEY"), &out)
			if out.SendMessage.Body != "hey" || out.SendMessage.Attributes["checked"] != true {
				t.Errorf("modified message %+v", out.SendMessage)
			}
			answer(0, 200, `{"action":"modify","body":"   "}`)
			s.Client("alice").Fails("REJECTED", sendQ, in("HEY"))

			for _, fail := range []func(){
				func() { answer(time.Hour, 200, `{"action":"allow"}`) }, // ends when the server gives up
				func() { answer(0, 503, `{}`) },
				func() { answer(0, 200, `{"action":"perhaps"}`) },
			} {
				fail()
				if closed {
					s.Client("alice").Fails("REJECTED", sendQ, in("during an outage"))
				} else {
					s.Client("alice").Do(sendQ, in("during an outage"), nil)
				}
			}
			var history struct {
				Messages struct {
					Edges []struct{ Node struct{ Body string } }
				}
			}
			s.Client("alice").Do(`query($c: ID!) { messages(channelId: $c) { edges { node { body } } } }`, map[string]any{"c": ch}, &history)
			want := 2
			if !closed {
				want = 5
			}
			if n := len(history.Messages.Edges); n != want {
				t.Errorf("fail closed %v: %d messages stored, want %d", closed, n, want)
			}
		}
	})
}

// TestWebhookMessageFields: a message's webhook carries what a query of
// Message would: type, origin, priority, senderDisplayName, location,
// clientMessageId and mentions on creation, the media's metadata, and
// updatedBy and the stored mentions on an edit.
func TestWebhookMessageFields(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, r := hookServer(t, b, []string{delivery.MessageCreated, delivery.MessageUpdated})
		ch := createChannel(t, s, "alice", "General", "bob", "gina")
		alice := s.Client("alice")
		var sent struct {
			SendMessage struct{ ID string } `json:"sendMessage"`
		}
		alice.Do(`mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "here", location: {latitude: 48.85, longitude: 2.35},
			mentions: ["gina", "bob"], clientMessageId: "c-1", priority: HIGH, senderDisplayName: "Al"}) { id } }`, map[string]any{"c": ch}, &sent)
		alice.Do(`mutation($id: ID!) { editMessage(id: $id, body: "here!") { id } }`, map[string]any{"id": sent.SendMessage.ID}, nil)

		var up struct {
			CreateUpload struct{ ID, UploadURL string } `json:"createUpload"`
		}
		data := []byte("plain text attachment\n")
		alice.Do(`mutation($in: CreateUploadInput!) { createUpload(input: $in) { id uploadUrl } }`,
			map[string]any{"in": map[string]any{"channelId": ch, "filename": "notes.txt", "contentType": "text/plain", "size": len(data)}}, &up)
		req, err := http.NewRequest(http.MethodPut, s.URL+up.CreateUpload.UploadURL, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := resp.Body.Close(); err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("upload: %d %v", resp.StatusCode, err)
		}
		alice.Do(`mutation($c: ID!, $m: [ID!]) { sendMessage(input: {channelId: $c, media: $m}) { id } }`,
			map[string]any{"c": ch, "m": []string{up.CreateUpload.ID}}, nil)

		got := eventsByType(t, s, r)
		type identity struct{ Identity string }
		type message struct {
			Message struct {
				Type, Origin, Priority string
				SenderDisplayName      *string
				Body                   string
				Location               *struct{ Latitude, Longitude float64 }
				Mentions               []identity
				ClientMessageID        *string
				UpdatedBy              *identity
				Media                  []struct {
					ID, Filename, ContentType string
					Size                      int
					URL                       *string
				}
			}
		}
		created := got[delivery.MessageCreated]
		if len(created) != 2 {
			t.Fatalf("%d message.created webhooks, want 2", len(created))
		}
		// The queue may post the two in either order.
		if !bytes.Contains(created[0].Data, []byte(`"LOCATION"`)) {
			created[0], created[1] = created[1], created[0]
		}
		var m message
		decode(t, created[:1], &m)
		mentioned := []string{}
		for _, u := range m.Message.Mentions {
			mentioned = append(mentioned, u.Identity)
		}
		slices.Sort(mentioned)
		if m.Message.Type != "LOCATION" || m.Message.Origin != "USER" || m.Message.Priority != "HIGH" ||
			m.Message.SenderDisplayName == nil || *m.Message.SenderDisplayName != "Al" ||
			m.Message.Location == nil || m.Message.Location.Latitude != 48.85 || m.Message.Location.Longitude != 2.35 ||
			!slices.Equal(mentioned, []string{"bob", "gina"}) || m.Message.ClientMessageID == nil || *m.Message.ClientMessageID != "c-1" ||
			m.Message.UpdatedBy != nil || len(m.Message.Media) != 0 {
			t.Errorf("message.created data %s", created[0].Data)
		}
		var edited message
		decode(t, got[delivery.MessageUpdated], &edited)
		if edited.Message.Body != "here!" || edited.Message.UpdatedBy == nil || edited.Message.UpdatedBy.Identity != "alice" || len(edited.Message.Mentions) != 2 {
			t.Errorf("message.updated data %s", got[delivery.MessageUpdated][0].Data)
		}
		var media message
		decode(t, created[1:], &media)
		if a := media.Message.Media; media.Message.Type != "MEDIA" || len(a) != 1 || a[0].ID != up.CreateUpload.ID ||
			a[0].Filename != "notes.txt" || a[0].ContentType != "text/plain" || a[0].Size != len(data) || a[0].URL != nil {
			t.Errorf("media message.created data %s", created[1].Data)
		}
	})
}
