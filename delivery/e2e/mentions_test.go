package e2e_test

import (
	"testing"

	"github.com/parleychat/parley/parleytest"
)

// TestPushMentionsAndSystemMessages: a member whose level is MENTIONS gets
// a push for a message that mentions them and for no other; a system
// message pushes nothing and does not count in badges; a LOCATION
// message's push says its type.
func TestPushMentionsAndSystemMessages(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		f := newFakes(t)
		s := parleytest.NewServer(t, b, parleytest.Options{Delivery: f.config(), SystemMessages: true})
		ch := createChannel(t, s, "alice", "General", "bob", "gina")
		register(t, s, "bob", "FCM", "fcm-bob")
		register(t, s, "gina", "APNS", "apns-gina")
		s.Client("gina").Do(`mutation($c: ID!) { setNotificationLevel(channelId: $c, level: MENTIONS) { notificationLevel } }`, map[string]any{"c": ch}, nil)

		// A system message: no push.
		s.Client("alice").Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "Lobby"}) { id } }`, map[string]any{"c": ch}, nil)
		send(t, s, "alice", ch, "no mention")
		waitIdle(t, s)
		if got := f.fcm.Messages(); len(got) != 1 || got[0].Body != "no mention" {
			t.Fatalf("FCM got %+v; want bob's push of the message only", got)
		}
		if got := f.apns.Notifications(); len(got) != 0 {
			t.Fatalf("APNs got %+v; gina is not mentioned", got)
		}

		var sent struct {
			SendMessage struct{ ID string } `json:"sendMessage"`
		}
		s.Client("alice").Do(`mutation($c: ID!) { sendMessage(input: {channelId: $c, location: {latitude: 1, longitude: 2}, mentions: ["gina"]}) { id } }`,
			map[string]any{"c": ch}, &sent)
		waitIdle(t, s)
		apns := f.apns.Notifications()
		if len(apns) != 1 || apns[0].Data["messageId"] != sent.SendMessage.ID || apns[0].Data["type"] != "LOCATION" {
			t.Fatalf("APNs got %+v; want gina's push of the mention", apns)
		}
		// Two unread messages; the system message does not count.
		if apns[0].Badge != 2 {
			t.Errorf("gina's badge %d, want 2", apns[0].Badge)
		}
		if got := f.fcm.Messages(); len(got) != 2 || got[1].Data["type"] != "LOCATION" {
			t.Errorf("FCM got %+v; want bob's push of the mention too", got)
		}
	})
}
