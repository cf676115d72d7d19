package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/delivery/deliverytest"
	"github.com/parleychat/parley/parleytest"
)

// TestPushRecipients: a message is pushed to every member but the author
// with a registration, on both providers, with the documented payload;
// a muted member, a MENTIONS member, a member online on a WebSocket and a
// member without registration get nothing.
func TestPushRecipients(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: f.config()})
		ch := createChannel(t, s, "alice", "General", "bob", "carol", "dave", "erin", "frank", "gina")
		register(t, s, "alice", "FCM", "fcm-alice")
		register(t, s, "bob", "FCM", "fcm-bob")
		register(t, s, "carol", "APNS", "apns-carol")
		register(t, s, "dave", "FCM", "fcm-dave")
		register(t, s, "erin", "FCM", "fcm-erin")
		register(t, s, "gina", "APNS", "apns-gina")
		s.Client("dave").Do(`mutation($c: ID!) { setNotificationLevel(channelId: $c, level: MUTED) { notificationLevel } }`, map[string]any{"c": ch}, nil)
		s.Client("gina").Do(`mutation($c: ID!) { setNotificationLevel(channelId: $c, level: MENTIONS) { notificationLevel } }`, map[string]any{"c": ch}, nil)
		ws := s.Dial(t, "erin")
		defer ws.Close()

		long := strings.Repeat("é", 250)
		id := send(t, s, "alice", ch, long)
		waitIdle(t, s)

		fcmGot := f.fcm.Messages()
		if len(fcmGot) != 1 || fcmGot[0].Token != "fcm-bob" {
			t.Fatalf("FCM got %+v; want one push to bob", fcmGot)
		}
		m := fcmGot[0]
		if m.Title != "General" || m.Body != strings.Repeat("é", 200) || m.CollapseKey != id || m.Tag != id {
			t.Errorf("FCM push %+v", m)
		}
		want := map[string]string{"channelId": ch, "messageId": id, "index": "0", "author": "alice", "type": "TEXT"}
		for k, v := range want {
			if m.Data[k] != v {
				t.Errorf("FCM data %s = %q, want %q", k, m.Data[k], v)
			}
		}
		apnsGot := f.apns.Notifications()
		if len(apnsGot) != 1 || apnsGot[0].Token != "apns-carol" {
			t.Fatalf("APNs got %+v; want one push to carol", apnsGot)
		}
		n := apnsGot[0]
		if n.Title != "General" || n.ThreadID != ch || n.CollapseID != id || n.Badge != 1 || n.Data["messageId"] != id || n.Data["author"] != "alice" {
			t.Errorf("APNs push %+v", n)
		}

		// A second message: carol's badge counts both unread messages.
		send(t, s, "alice", ch, "again")
		waitIdle(t, s)
		if got := f.apns.Notifications(); len(got) != 2 || got[1].Badge != 2 || got[1].Body != "again" {
			t.Errorf("second APNs push %+v; want badge 2", got[len(got)-1])
		}
	})
}

// TestPushWhenAlways: with PARLEY_PUSH_WHEN=always a member online gets
// pushes too.
func TestPushWhenAlways(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: f.config(), PushAlways: true})
		ch := createChannel(t, s, "alice", "General", "erin")
		register(t, s, "erin", "FCM", "fcm-erin")
		ws := s.Dial(t, "erin")
		defer ws.Close()
		send(t, s, "alice", ch, "hi")
		if got := f.fcm.Next(t); got.Token != "fcm-erin" {
			t.Errorf("FCM got %+v", got)
		}
	})
}

// TestPushTitleFallsBackToSender: a channel without a name is titled with
// the sender's name.
func TestPushTitleFallsBackToSender(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: f.config()})
		var dm struct {
			DirectChannel struct{ ID string } `json:"directChannel"`
		}
		s.Client("alice").Do(`mutation { directChannel(identity: "bob") { id } }`, nil, &dm)
		s.Client("alice").Do(`mutation { updateMe(input: {friendlyName: "Alice A."}) { id } }`, nil, nil)
		register(t, s, "bob", "APNS", "apns-bob")
		send(t, s, "alice", dm.DirectChannel.ID, "psst")
		if got := f.apns.Next(t); got.Title != "Alice A." || got.Body != "psst" {
			t.Errorf("APNs got %+v", got)
		}
	})
}

// TestPushRetriesHonourRetryAfter: a 503 with Retry-After is retried no
// sooner than it says, and only to the device that failed.
func TestPushRetriesHonourRetryAfter(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: f.config()})
		ch := createChannel(t, s, "alice", "General", "bob", "carol")
		register(t, s, "bob", "FCM", "fcm-bob")
		register(t, s, "carol", "FCM", "fcm-carol")
		f.fcm.Reply("fcm-bob", deliverytest.Reply{Status: http.StatusServiceUnavailable, Reason: "UNAVAILABLE", RetryAfter: 2 * time.Second})
		send(t, s, "alice", ch, "hi")
		first := f.fcm.Next(t)
		second := f.fcm.Next(t)
		start := time.Now()
		third := f.fcm.Next(t)
		if third.Token != "fcm-bob" || third.Status != http.StatusOK {
			t.Fatalf("retry %+v; want bob's push again", third)
		}
		if tokens := []string{first.Token, second.Token}; !slices.Contains(tokens, "fcm-bob") || !slices.Contains(tokens, "fcm-carol") {
			t.Errorf("first attempts went to %v", tokens)
		}
		// The retry came at least Retry-After after the failure (less the
		// time the second of the first two took to arrive).
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("retried %s after the failure; Retry-After was 2s", waited)
		}
		st := waitIdle(t, s)
		if st.Retried != 1 || st.Sent != 2 {
			t.Errorf("stats %+v; want 1 retry, 2 sent", st)
		}
		if got := f.fcm.Messages(); len(got) != 3 {
			t.Errorf("FCM got %d sends, want 3 (carol's not repeated)", len(got))
		}
	})
}

// TestPushGivesUp: a delivery that keeps failing stops after
// PARLEY_DELIVERY_MAX_ATTEMPTS.
func TestPushGivesUp(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		cfg := f.config()
		cfg.MaxAttempts = 2
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: cfg})
		ch := createChannel(t, s, "alice", "General", "bob")
		register(t, s, "bob", "APNS", "apns-bob")
		fail := deliverytest.Reply{Status: http.StatusServiceUnavailable, Reason: "ServiceUnavailable"}
		f.apns.Reply("apns-bob", fail, fail, fail)
		send(t, s, "alice", ch, "hi")
		st := waitIdle(t, s)
		if got := f.apns.Notifications(); len(got) != 2 {
			t.Errorf("APNs got %d attempts, want 2", len(got))
		}
		if st.GivenUp != 1 || st.Sent != 0 {
			t.Errorf("stats %+v; want 1 given up", st)
		}
	})
}

// TestPushPrunesInvalidTokens: the registrations FCM and APNs call dead
// are removed; the user is then no longer notifiable.
func TestPushPrunesInvalidTokens(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: f.config()})
		ch := createChannel(t, s, "alice", "General", "bob")
		for _, tok := range []string{"fcm-gone", "fcm-bad", "fcm-ok"} {
			register(t, s, "bob", "FCM", tok)
		}
		for _, tok := range []string{"apns-gone", "apns-bad"} {
			register(t, s, "bob", "APNS", tok)
		}
		f.fcm.Reply("fcm-gone", deliverytest.Reply{Status: http.StatusNotFound, Reason: "UNREGISTERED"})
		f.fcm.Reply("fcm-bad", deliverytest.Reply{Status: http.StatusBadRequest, Reason: "INVALID_ARGUMENT"})
		f.apns.Reply("apns-gone", deliverytest.Reply{Status: http.StatusGone, Reason: "Unregistered"})
		f.apns.Reply("apns-bad", deliverytest.Reply{Status: http.StatusBadRequest, Reason: "BadDeviceToken"})
		send(t, s, "alice", ch, "hi")
		st := waitIdle(t, s)
		if st.Pruned != 4 {
			t.Errorf("stats %+v; want 4 pruned", st)
		}
		var out struct {
			MyPushRegistrations []struct{ Token string } `json:"myPushRegistrations"`
			Me                  struct{ Notifiable bool }
		}
		s.Client("bob").Do(`{ myPushRegistrations { token } me { notifiable } }`, nil, &out)
		if len(out.MyPushRegistrations) != 1 || out.MyPushRegistrations[0].Token != "fcm-ok" || !out.Me.Notifiable {
			t.Errorf("after pruning: %+v", out)
		}
	})
}

// TestNoPushWithoutProviders: a server without push configuration queues
// nothing and sends nothing.
func TestNoPushWithoutProviders(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := parleytest.NewServer(t, b, parleytest.Options{})
		ch := createChannel(t, s, "alice", "General", "bob")
		register(t, s, "bob", "FCM", "fcm-bob")
		send(t, s, "alice", ch, "hi")
		var n int64
		if err := s.Store.DB(t.Context()).Table("river_job").Count(&n).Error; err != nil || n != 0 {
			t.Errorf("river_job holds %d jobs (%v); want none", n, err)
		}
	})
}

// TestPushConcurrentSends: sends that arrive together, which share send
// batches and so push jobs, each get their own pushes: one to every device
// of every recipient of their channel, none to their author, with their
// channel's title, their body, ID, index and author, and their ID as the
// collapse key.
func TestPushConcurrentSends(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: f.config()})
		channels := map[string]string{} // name → id
		channels["General"] = createChannel(t, s, "alice", "General", "bob", "carol")
		channels["Other"] = createChannel(t, s, "bob", "Other", "alice", "dave")
		members := map[string][]string{"General": {"alice", "bob", "carol"}, "Other": {"bob", "alice", "dave"}}
		tokens := map[string]string{"alice": "fcm-alice", "bob": "fcm-bob", "carol": "apns-carol", "dave": "fcm-dave"}
		for who, tok := range tokens {
			register(t, s, who, strings.ToUpper(strings.Split(tok, "-")[0]), tok)
		}
		type sent struct{ channel, author, body, id, index string }
		plan := []struct{ channel, author string }{{"General", "alice"}, {"Other", "bob"}, {"General", "carol"}, {"Other", "dave"}}
		const sends = 32
		msgs := make([]sent, sends)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range msgs {
			p := plan[i%len(plan)]
			msgs[i] = sent{channel: p.channel, author: p.author, body: fmt.Sprintf("message %d", i)}
			wg.Go(func() {
				<-start
				r := s.Client(p.author).Post(`mutation($in: SendMessageInput!) { sendMessage(input: $in) { id index } }`,
					map[string]any{"in": map[string]any{"channelId": channels[p.channel], "body": msgs[i].body}})
				var out struct {
					SendMessage struct {
						ID    string
						Index int
					} `json:"sendMessage"`
				}
				if len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil {
					t.Errorf("send %d: %+v", i, r)
					return
				}
				msgs[i].id, msgs[i].index = out.SendMessage.ID, strconv.Itoa(out.SendMessage.Index)
			})
		}
		close(start)
		wg.Wait()
		waitIdle(t, s)

		// got holds, by token and collapse key, what each device received.
		type push struct{ title, body, channel, id, index, author string }
		got := map[[2]string][]push{}
		for _, m := range f.fcm.Messages() {
			got[[2]string{m.Token, m.CollapseKey}] = append(got[[2]string{m.Token, m.CollapseKey}],
				push{m.Title, m.Body, m.Data["channelId"], m.Data["messageId"], m.Data["index"], m.Data["author"]})
		}
		for _, n := range f.apns.Notifications() {
			got[[2]string{n.Token, n.CollapseID}] = append(got[[2]string{n.Token, n.CollapseID}],
				push{n.Title, n.Body, n.ThreadID, n.Data["messageId"], n.Data["index"], n.Data["author"]})
		}
		want := 0
		for _, m := range msgs {
			for _, who := range members[m.channel] {
				key := [2]string{tokens[who], m.id}
				if who == m.author {
					if len(got[key]) != 0 {
						t.Errorf("%s got a push for their own message %q", who, m.body)
					}
					continue
				}
				want++
				w := push{m.channel, m.body, channels[m.channel], m.id, m.index, m.author}
				if len(got[key]) != 1 || got[key][0] != w {
					t.Errorf("%s got %+v for %q; want one push %+v", who, got[key], m.body, w)
				}
			}
		}
		if n := len(f.fcm.Messages()) + len(f.apns.Notifications()); n != want {
			t.Errorf("%d pushes sent; want %d", n, want)
		}
		var jobs int64
		if err := s.Store.DB(t.Context()).Table("river_job").Where("kind = ?", "parley.push.batch").Count(&jobs).Error; err != nil || jobs > sends {
			t.Errorf("river_job holds %d push jobs (%v) for %d sends", jobs, err, sends)
		}
		t.Logf("%d sends, %d push jobs", sends, jobs)
	})
}
