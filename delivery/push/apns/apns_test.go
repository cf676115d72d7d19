package apns_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/deliverytest"
	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/delivery/push/apns"
	"github.com/parleychat/parley/models"
)

var ca *deliverytest.CA

func TestMain(m *testing.M) {
	var cleanup func()
	var err error
	ca, cleanup, err = deliverytest.InstallCA()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func provider(t *testing.T, a *deliverytest.APNs) *apns.Provider {
	t.Helper()
	p, err := apns.New(apns.Config{KeyFile: a.KeyFile, KeyID: deliverytest.APNsKeyID, TeamID: deliverytest.APNsTeamID, Topic: deliverytest.APNsTopic, Endpoint: a.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func notification(token string) *delivery.Push {
	return &delivery.Push{
		Device: delivery.Device{RegistrationID: "r1", Provider: models.PushAPNS, Token: token},
		Title:  "General", Body: "Hello", CollapseID: "m1", ThreadID: "c1", Badge: 3,
		Data: map[string]string{"channelId": "c1", "messageId": "m1", "index": "0", "author": "alice", "type": "TEXT"},
	}
}

// TestSend: a notification goes over HTTP/2 with a provider token, the
// topic, the collapse ID, thread-id and badge.
func TestSend(t *testing.T) {
	a := deliverytest.NewAPNs(t, ca)
	if err := provider(t, a).Send(t.Context(), notification("abcd")); err != nil {
		t.Fatal(err)
	}
	got := a.Next(t)
	if got.Token != "abcd" || got.Title != "General" || got.Body != "Hello" || got.Badge != 3 || got.ThreadID != "c1" ||
		got.CollapseID != "m1" || got.PushType != "alert" || got.Priority != "10" || got.Data["messageId"] != "m1" || got.Data["index"] != "0" {
		t.Errorf("APNs got %+v", got)
	}
}

// TestSendErrors: APNs' answers become push's error kinds.
func TestSendErrors(t *testing.T) {
	a := deliverytest.NewAPNs(t, ca)
	p := provider(t, a)
	for _, tc := range []struct {
		reply     deliverytest.Reply
		invalid   bool
		transient bool
	}{
		{reply: deliverytest.Reply{Status: http.StatusGone, Reason: "Unregistered"}, invalid: true},
		{reply: deliverytest.Reply{Status: http.StatusBadRequest, Reason: "BadDeviceToken"}, invalid: true},
		{reply: deliverytest.Reply{Status: http.StatusTooManyRequests, Reason: "TooManyRequests"}, transient: true},
		{reply: deliverytest.Reply{Status: http.StatusServiceUnavailable, Reason: "ServiceUnavailable"}, transient: true},
		{reply: deliverytest.Reply{Status: http.StatusBadRequest, Reason: "PayloadTooLarge"}},
	} {
		t.Run(tc.reply.Reason, func(t *testing.T) {
			a.Reply("tok-"+tc.reply.Reason, tc.reply)
			err := p.Send(t.Context(), notification("tok-"+tc.reply.Reason))
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, push.ErrInvalidToken); got != tc.invalid {
				t.Errorf("invalid token = %v, want %v: %v", got, tc.invalid, err)
			}
			if _, ok := errors.AsType[*delivery.TransientError](err); ok != tc.transient {
				t.Errorf("transient = %v, want %v: %v", ok, tc.transient, err)
			}
		})
	}
}
